"""How busy a host and its seats are: the mpstat view, from one extra round trip.

The script is fixed; its output is parsed by pure functions tested on
captured text. Seat health is fleet/ready.py's check, asked once.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from fleet import facts
from fleet.steps import Run

# $1 the fleet; $2 (hub mode) the name prefix of the students' servers' containers, which Swarm names itself.
USAGE = r"""
fleet=$1 prefix=${2:-}
t() { timeout 20 "$@"; }
echo '--- stats'
ids=$(t docker ps --quiet --filter "label=fleet.name=$fleet" 2>/dev/null)
[ -n "$prefix" ] && ids="$ids $(t docker ps --quiet --filter "name=^$prefix" 2>/dev/null)"
# shellcheck disable=SC2086 # one word per id
[ -n "$(echo $ids)" ] && t docker stats --no-stream --format '{{json .}}' $ids 2>/dev/null
echo '--- loadavg'; cat /proc/loadavg
echo '--- meminfo'; grep -E '^(MemTotal|MemAvailable):' /proc/meminfo
echo '--- df'; df -Pk / /var/lib/docker 2>/dev/null | tail -n +2
echo '--- end'
"""

UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
         "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


@dataclass(frozen=True)
class SeatUsage:
    cpu_percent: float
    memory: int  # bytes in use
    limit: int  # bytes allowed (the host's memory when unlimited)


@dataclass(frozen=True)
class HostUsage:
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    memory_total: int = 0
    memory_available: int = 0
    disks: dict[str, tuple[int, int]] = field(default_factory=dict)  # mount → (used, size) bytes
    seats: dict[str, SeatUsage] = field(default_factory=dict)

    def summary(self) -> str:
        used = self.memory_total - self.memory_available
        disks = ", ".join(f"disk {m} {human(u)}/{human(s)}" for m, (u, s) in self.disks.items())
        return (f"load {self.load[0]:.2f} {self.load[1]:.2f} {self.load[2]:.2f}, "
                f"memory {human(used)}/{human(self.memory_total)}" + (f", {disks}" if disks else ""))


def command(fleet: str, timeout: int, prefix: str = "") -> Run:
    return Run("measure usage", ("sh", "-c", USAGE, "sh", fleet, prefix), timeout)


def size(text: str) -> int:
    """'51.2MiB' → bytes, as docker stats prints them."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", text)
    if not m:
        return 0
    return int(float(m.group(1)) * UNITS.get(m.group(2).lower() or "b", 1))


def human(n: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} B"


def parse(text: str) -> HostUsage:
    sections = facts.sections(text)
    seats = {}
    for line in sections.get("stats", []):
        if line.startswith("{"):
            s = json.loads(line)
            used, _, limit = s.get("MemUsage", "").partition("/")
            seats[s["Name"]] = SeatUsage(float(s.get("CPUPerc", "0").rstrip("%") or 0), size(used), size(limit))
    load = tuple(float(x) for x in (sections.get("loadavg") or ["0 0 0"])[0].split()[:3])
    mem = {k.rstrip(":"): int(v) * 1024 for k, v, *_ in (x.split() for x in sections.get("meminfo", []) if x.strip())}
    disks = {}
    for line in sections.get("df", []):
        cols = line.split()
        if len(cols) >= 6 and cols[5] not in disks:
            disks[cols[5]] = (int(cols[2]) * 1024, int(cols[1]) * 1024)
    return HostUsage(load, mem.get("MemTotal", 0), mem.get("MemAvailable", 0), disks, seats)  # type: ignore[arg-type]
