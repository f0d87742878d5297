"""Seat expansion and the docker command lines, compared as plain data."""
from pathlib import Path

import pytest

from fleet import commands, inventory, seats


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


def test_expand_is_deterministic(inv):
    got = [(s.container, s.host_port, s.service.container_port) for s in seats.expand(inv)]
    assert got == [("stats101-notebook-1", 8000, 8888), ("stats101-notebook-2", 8001, 8888),
                   ("stats101-r-1", 8700, 8787)]


def test_run_seat_argv_has_limits_labels_and_no_secret(inv):
    seat = seats.expand(inv)[1]
    argv = commands.run_seat(seat, "abc123")
    assert argv == (
        "docker", "run", "--detach", "--name", "stats101-notebook-2", "--restart", "unless-stopped",
        "--label", "fleet.name=stats101", "--label", "fleet.service=notebook", "--label", "fleet.seat=2",
        "--label", "fleet.spec=abc123",
        "--memory", "536870912", "--memory-swap", "536870912", "--cpus", "1.5",
        "--publish", "8001:8888", "--env-file", "/etc/fleet/stats101/stats101-notebook-2.env", "local/jupyter:1",
    )
    r = seats.expand(inv)[2]
    assert "--cpuset-cpus" in commands.run_seat(r, "x") and "0-1" in commands.run_seat(r, "x")


def test_env_file_is_literal_and_carries_the_secret(inv):
    seat = seats.expand(inv)[0]
    assert seat.env_file("s3cret") == (
        b"TZ=Europe/Amsterdam\nQUOTE=it's \"fine\"; $(touch /tmp/x)\nJUPYTER_TOKEN=s3cret\n")
    r = seats.expand(inv)[2]
    assert r.env_file("pw") == b"PASSWORD=pw\n"


def test_spec_hash_changes_with_what_shapes_the_container(inv):
    a, b = seats.expand(inv)[:2]
    assert a.spec_hash("x") == a.spec_hash("x")
    assert a.spec_hash("x") != a.spec_hash("y")
    assert a.spec_hash("x") != b.spec_hash("x")
    assert "x" not in a.spec_hash("x") or len(a.spec_hash("x")) == 16


def test_urls(inv):
    seat = seats.expand(inv)[0]
    assert seat.url("192.0.2.10") == "http://192.0.2.10:8000/"
    assert seat.url("192.0.2.10", "tok") == "http://192.0.2.10:8000/?token=tok"
    assert seat.url("2001:db8::1") == "http://[2001:db8::1]:8000/"
    assert seats.expand(inv)[2].url("h", "pw") == "http://h:8700/"


def test_new_secret_has_128_bits():
    s = {seats.new_secret() for _ in range(100)}
    assert len(s) == 100 and all(len(x) == 32 and int(x, 16) >= 0 for x in s)
