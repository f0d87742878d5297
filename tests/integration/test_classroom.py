"""The workshop day on a real host: status, a dead seat, reset, distribute/collect, logs, upgrade.

One real test host with two Jupyter seats behind the HTTPS proxy, a roster
of two students. Tests run in order and share the fleet.
"""
from __future__ import annotations

import json
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import fab, seat_http, ssh

pytestmark = pytest.mark.hosts

INVENTORY = """\
name: class
ssh: {{key: {key}, user: teacher}}
hosts: [{address}]
docker: {{source: distro}}
timeouts: {{connect: 5}}
roster: [Ada Lovelace, Grace Hopper]
services:
  - {{name: nb, image: {image}, publish: 8000, seats: 2, memory: 256m, push: true}}
proxy: {{image: {caddy}, push: true}}
"""


@pytest.fixture(scope="module")
def lab(start_hosts, keypair, built_images, tmp_path_factory):
    (host,) = start_hosts("class")
    work = tmp_path_factory.mktemp("class")
    inv = work / "lab.yml"
    fields = dict(key=keypair[0], address=host.address, image=built_images["jupyter"], caddy=built_images["caddy"])
    inv.write_text(INVENTORY.format(**fields))
    lab = {"host": host, "key": keypair[0], "work": work, "inv": inv, "fields": fields, "state": work / "state"}
    out = run(lab, "provision")
    assert out.returncode == 0, out.stdout + out.stderr
    # done means answering: both seats log in with their tokens the moment provision returns, no second try
    assert [token_status(lab, n, deadline=0) for n in (1, 2)] == [200, 200]
    yield lab
    subprocess.run(["docker", "rmi", "-f", "fleet-jupyter:broken", "fleet-jupyter:v2"], capture_output=True, timeout=60)


def run(lab, task: str, *args: str, inv: Path | None = None):
    return fab(task, "--hosts", str(inv or lab["inv"]), *args, cwd=lab["work"], state_dir=lab["state"])


def state(lab) -> dict:
    return json.loads((lab["state"] / "class.json").read_text())


def token_status(lab, seat: int, deadline: float = 90) -> int:
    """What seat N's /api/status answers to its own token, checked against the host's proxy authority
    (``deadline``: seconds to keep trying while nothing answers; 0: one try)."""
    host = lab["host"]
    s = state(lab)
    secret = s["secrets"][host.address][f"class-nb-{seat}"]
    ctx = ssl.create_default_context(cadata=s["proxy_ca"][host.address])
    return seat_http(f"https://{host.address}:{7999 + seat}/", secret, ctx, deadline)


def status(lab) -> dict:
    out = run(lab, "status", "--json")
    (host,) = json.loads(out.stdout)
    return {s["container"]: s for s in host["seats"]} | {"_usage": host["usage"], "_rc": out.returncode}


def test_status_shows_health_cpu_memory_and_host_usage(lab):
    token_status(lab, 1), token_status(lab, 2)  # both servers up
    seats = status(lab)
    assert seats["_rc"] == 0
    for n in (1, 2):
        s = seats[f"class-nb-{n}"]
        assert (s["state"], s["health"]) == ("running", "up (200)")  # alive, and logs in with its token
        assert s["cpu"].endswith("%") and s["memory"].endswith("/ 256.0 MiB")
    assert seats["_usage"].startswith("load ") and "memory " in seats["_usage"] and "disk /" in seats["_usage"]
    table = run(lab, "status").stdout
    assert "HEALTH" in table and f"{lab['host'].address}: load " in table


def test_a_stopped_seat_is_seen_dead_within_the_timeout(lab):
    ssh(lab["host"], lab["key"], "docker stop -t 1 class-nb-2 >/dev/null")
    started = time.monotonic()
    seats = status(lab)
    assert time.monotonic() - started < 30
    assert seats["class-nb-2"]["state"] == "exited"
    assert seats["class-nb-2"]["health"].startswith("DOWN")
    assert seats["class-nb-1"]["health"] == "up (200)"


def test_reset_by_student_name_keeps_the_token(lab):
    before = ssh(lab["host"], lab["key"], "docker inspect --format '{{.Id}}' class-nb-2").strip()
    out = run(lab, "reset", "--seat", "grace hopper")
    assert out.returncode == 0, out.stdout + out.stderr
    after = ssh(lab["host"], lab["key"], "docker inspect --format '{{.Id}} {{.State.Status}}' class-nb-2").split()
    assert after[0] != before and after[1] == "running"
    assert token_status(lab, 2) == 200
    bad = run(lab, "reset", "--seat", "7")
    assert bad.returncode == 2 and "there is no seat 7: the fleet has seats 1-2" in bad.stderr


def test_distribute_keeps_students_changes_and_collect_brings_all_back(lab):
    src = lab["work"] / "exercises"
    (src / "data").mkdir(parents=True)
    (src / "ex1.py").write_text("print('exercise 1')\n")
    (src / "data" / "table.csv").write_bytes(bytes(range(256)) * 40)
    (src / "notes with space's.md").write_text("quote ' and $(touch /tmp/pwned)\n")
    host = lab["host"]
    # Ada already wrote her own ex1.py: it must survive
    ssh(host, lab["key"], "docker exec class-nb-1 sh -c 'echo mine > /home/jovyan/ex1.py'")
    out = run(lab, "distribute", "--src", str(src))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 kept: ex1.py" in out.stdout
    assert ssh(host, lab["key"], "docker exec class-nb-1 cat /home/jovyan/ex1.py") == "mine\n"
    owners = ssh(host, lab["key"], "docker exec class-nb-2 stat -c '%U %n' /home/jovyan/ex1.py "
                                   "/home/jovyan/data/table.csv")
    assert [line.split()[0] for line in owners.splitlines()] == ["jovyan", "jovyan"]
    assert ssh(host, lab["key"], "ls /tmp/pwned 2>/dev/null; docker exec class-nb-2 ls /tmp/pwned 2>/dev/null; true") == ""
    # a large file stays behind
    ssh(host, lab["key"], "docker exec class-nb-2 sh -c 'head -c 3000000 /dev/zero > /home/jovyan/big.bin'")
    dest = lab["work"] / "collected"
    out = run(lab, "collect", "--dest", str(dest), "--max-size", "1m")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 too large, left out: big.bin" in out.stdout
    ada, grace = dest / "Ada Lovelace", dest / "Grace Hopper"
    assert (ada / "ex1.py").read_text() == "mine\n"
    for f in ("data/table.csv", "notes with space's.md", "ex1.py"):
        assert (grace / f).read_bytes() == (src / f).read_bytes()
    assert (ada / "data" / "table.csv").read_bytes() == (src / "data" / "table.csv").read_bytes()
    assert not (grace / "big.bin").exists()


def test_logs_of_a_seat(lab):
    out = run(lab, "logs", "--seat", "1", "--tail", "20")
    assert out.returncode == 0, out.stderr
    assert "Jupyter Server" in out.stdout or "jupyter" in out.stdout.lower()


def test_upgrade_stops_at_a_broken_image_and_rolls_a_good_one(lab):
    subprocess.run(["docker", "build", "-q", "-t", "fleet-jupyter:broken", "-"], check=True, timeout=120,
                   input=f"FROM {lab['fields']['image']}\nCMD [\"false\"]\n", text=True, capture_output=True)
    old = ssh(lab["host"], lab["key"], "docker inspect --format '{{.Image}}' class-nb-2").strip()
    broken = lab["work"] / "broken.yml"
    broken.write_text(lab["inv"].read_text().replace(lab["fields"]["image"], "fleet-jupyter:broken"))
    out = run(lab, "upgrade", "--batch", "1", "--wait", "20", inv=broken)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "UNHEALTHY" in out.stdout and "class-nb-1" in out.stdout
    assert "0 of 1 seats upgraded" in out.stdout and "keep the old image" in out.stdout
    assert ssh(lab["host"], lab["key"], "docker inspect --format '{{.Image}} {{.State.Status}}' class-nb-2").split() \
        == [old, "running"]
    subprocess.run(["docker", "tag", lab["fields"]["image"], "fleet-jupyter:v2"], check=True, timeout=30)
    good = lab["work"] / "good.yml"
    good.write_text(lab["inv"].read_text().replace(lab["fields"]["image"], "fleet-jupyter:v2"))
    out = run(lab, "upgrade", "--batch", "1", inv=good)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 of 2 seats upgraded" in out.stdout
    images = ssh(lab["host"], lab["key"], "docker inspect --format '{{.Config.Image}}' class-nb-1 class-nb-2").split()
    assert images == ["fleet-jupyter:v2", "fleet-jupyter:v2"]
    assert token_status(lab, 1) == 200 and token_status(lab, 2) == 200
    assert ssh(lab["host"], lab["key"], "docker exec class-nb-1 cat /home/jovyan/ex1.py") == "mine\n"  # files kept
