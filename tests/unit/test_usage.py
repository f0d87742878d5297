"""Parsing the usage script's output (docker stats, loadavg, meminfo, df)."""
# ruff: noqa: E501  (captured docker stats lines stay whole)
from fleet import usage

OUTPUT = """\
--- stats
{"BlockIO":"0B / 0B","CPUPerc":"12.50%","Container":"5a1","ID":"5a1","MemPerc":"20.02%","MemUsage":"51.25MiB / 256MiB","Name":"class-nb-1","NetIO":"1.2kB / 0B","PIDs":"3"}
{"BlockIO":"0B / 0B","CPUPerc":"0.00%","Container":"6b2","ID":"6b2","MemPerc":"0.10%","MemUsage":"11.2MiB / 23.54GiB","Name":"class-proxy","NetIO":"0B / 0B","PIDs":"7"}
--- loadavg
0.52 0.31 0.12 2/345 6789
--- meminfo
MemTotal:       24684084 kB
MemAvailable:   20000000 kB
--- df
/dev/vda        263174212 23456789 226365355  10% /
/dev/vda        263174212 23456789 226365355  10% /
--- end
"""


def test_parse_usage():
    u = usage.parse(OUTPUT)
    assert u.load == (0.52, 0.31, 0.12)
    assert (u.memory_total, u.memory_available) == (24684084 * 1024, 20000000 * 1024)
    assert u.disks == {"/": (23456789 * 1024, 263174212 * 1024)}
    nb = u.seats["class-nb-1"]
    assert (nb.cpu_percent, nb.memory, nb.limit) == (12.5, int(51.25 * 1024**2), 256 * 1024**2)
    assert u.seats["class-proxy"].limit == int(23.54 * 1024**3)
    assert u.summary() == "load 0.52 0.31 0.12, memory 4.5 GiB/23.5 GiB, disk / 22.4 GiB/251.0 GiB"


def test_sizes():
    assert [usage.size(x) for x in ("0B", "1.2kB", "51.25MiB", "2GiB", "")] == [0, 1200, int(51.25 * 1024**2),
                                                                                2 * 1024**3, 0]
    assert usage.human(256 * 1024**2) == "256.0 MiB"
