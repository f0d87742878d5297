"""Seat expansion and the docker command lines, compared as plain data."""
from pathlib import Path

import pytest

from fleet import desired, inventory, seats

SECRETS = {"stats101-notebook-1": "a", "stats101-notebook-2": "b", "stats101-r-1": "c"}


@pytest.fixture
def inv(tmp_path: Path):
    p = tmp_path / "lab.yml"
    p.write_text("""\
name: stats101
hosts: [192.0.2.10, "2001:db8::1"]
services:
  - {name: notebook, image: "local/jupyter:1", publish: 8000, seats: 2, memory: 512m, cpus: 1.5,
     env: {TZ: Europe/Amsterdam, QUOTE: "it's \\"fine\\"; $(touch /tmp/x)"}}
  - {name: r, kind: rstudio, image: rocker/rstudio:4.4.1, publish: 8700, cpuset: "0-1"}
""")
    return inventory.load(p)


@pytest.fixture
def inv_off(inv, tmp_path):
    p = tmp_path / "off.yml"
    p.write_text(inv.path.read_text() + "tls: off\n")
    return inventory.load(p)


def test_expand_is_deterministic(inv):
    got = [(s.container, s.host_port, s.service.container_port) for s in seats.expand(inv)]
    assert got == [("stats101-notebook-1", 8000, 8888), ("stats101-notebook-2", 8001, 8888),
                   ("stats101-r-1", 8700, 8787)]


def test_seat_container_argv_has_limits_labels_and_no_secret(inv):
    seat = seats.expand(inv)[1]
    w = desired.seat_container(inv, seat, "s3cret")
    assert w.run == (
        "docker", "run", "--detach", "--name", "stats101-notebook-2", "--restart", "unless-stopped",
        "--label", "fleet.name=stats101", "--label", "fleet.service=notebook", "--label", "fleet.seat=2",
        "--label", f"fleet.spec={w.spec}",
        "--network", "stats101-seats", "--hostname", "stats101-notebook-2",
        "--memory", "536870912", "--memory-swap", "536870912", "--cpus", "1.5",
        "--volume", "stats101-notebook-2-work:/home/jovyan",
        "--env-file", "/etc/fleet/stats101/stats101-notebook-2.env", "local/jupyter:1",
    )
    assert w.host_ports == () and "s3cret" not in repr(w.run)
    assert [(f.path, f.mode) for f in w.files] == [("/etc/fleet/stats101/stats101-notebook-2.env", 0o600)]
    r = seats.expand(inv)[2]
    argv = desired.seat_container(inv, r, "x").run
    assert argv[argv.index("--cpuset-cpus") + 1] == "0-1"


def test_without_tls_seats_publish_their_own_port(inv_off):
    w = desired.seat_container(inv_off, seats.expand(inv_off)[1], "x")
    assert w.run[w.run.index("--publish") + 1] == "8001:8888" and w.host_ports == (8001,)
    assert [x.name for x in desired.for_host(inv_off, inv_off.hosts[0], SECRETS)] == [
        "stats101-notebook-1", "stats101-notebook-2", "stats101-r-1"]


def test_with_tls_the_proxy_alone_publishes_every_seat_port(inv):
    ws = desired.for_host(inv, inv.hosts[0], SECRETS)
    proxy = ws[-1]
    assert proxy.name == "stats101-proxy" and proxy.seat is None and proxy.image == "caddy:2.11.7"
    assert proxy.host_ports == (8000, 8001, 8700)
    argv = proxy.run
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--publish"] == ["8000:8000", "8001:8001", "8700:8700"]
    assert "stats101-proxy-data:/data" in argv and "/etc/fleet/stats101/Caddyfile:/etc/caddy/Caddyfile:ro" in argv
    assert all("--publish" not in w.run for w in ws[:-1])


def test_env_file_is_literal_and_carries_the_secret(inv):
    seat = seats.expand(inv)[0]
    assert seat.env_file("s3cret") == (
        b"TZ=Europe/Amsterdam\nQUOTE=it's \"fine\"; $(touch /tmp/x)\nJUPYTER_TOKEN=s3cret\n")
    r = seats.expand(inv)[2]
    assert r.env_file("pw") == b"PASSWORD=pw\n"


def test_spec_changes_with_what_shapes_the_container(inv, tmp_path):
    a, b = seats.expand(inv)[:2]
    spec = desired.seat_container(inv, a, "x").spec
    assert spec == desired.seat_container(inv, a, "x").spec
    assert spec != desired.seat_container(inv, a, "y").spec
    assert spec != desired.seat_container(inv, b, "x").spec
    p = tmp_path / "more.yml"
    p.write_text(inv.path.read_text().replace("memory: 512m", "memory: 1g"))
    more = inventory.load(p)
    assert spec != desired.seat_container(more, seats.expand(more)[0], "x").spec


def test_urls(inv, inv_off):
    seat = seats.expand(inv)[0]
    assert seat.url("192.0.2.10") == "https://192.0.2.10:8000/"
    assert seat.url("192.0.2.10", "tok") == "https://192.0.2.10:8000/?token=tok"
    assert seat.url("2001:db8::1") == "https://[2001:db8::1]:8000/"
    assert seats.expand(inv)[2].url("h", "pw") == "https://h:8700/"
    assert seats.expand(inv_off)[0].url("192.0.2.10", "tok") == "http://192.0.2.10:8000/?token=tok"


def test_new_secret_has_128_bits():
    s = {seats.new_secret() for _ in range(100)}
    assert len(s) == 100 and all(len(x) == 32 and int(x, 16) >= 0 for x in s)
