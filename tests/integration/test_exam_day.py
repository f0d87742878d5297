"""An exam day on two real hosts: course data read-only in every seat, a roster group's own limits, a spare seat
per host, and students moved to spares (with their files, then from a host that no longer answers).

Two test hosts, one Jupyter seat and one spare each behind the HTTPS proxy, a roster of two students (one an
instructor with more memory), a folder of course data. The tests run in order and share the fleet.
"""
from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import fab, seat_http, ssh

pytestmark = pytest.mark.hosts

INVENTORY = """\
name: exam
ssh: {{key: {key}, user: teacher}}
hosts: [{a}, {b}]
docker: {{source: distro}}
timeouts: {{connect: 5}}
roster: students.csv
data: {{src: datasets}}
services:
  - name: nb
    image: {image}
    publish: 8000
    seats: 1
    spares: 1
    memory: 256m
    push: true
    groups: {{instructor: {{memory: 320m}}}}
proxy: {{image: {caddy}, push: true}}
"""
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def exam(start_hosts, keypair, built_images, tmp_path_factory):
    started = time.monotonic()
    a, b = start_hosts("exam-a", "exam-b")
    work = tmp_path_factory.mktemp("exam")
    (work / "students.csv").write_text("Name,Group\nAda Lovelace,Instructor\nGrace Hopper,\n")
    data = work / "datasets"
    (data / "sub").mkdir(parents=True)
    (data / "grades.csv").write_text("student,grade\nada,1\n")
    (data / "sub" / "big.bin").write_bytes(os.urandom(MIB))
    inv = work / "lab.yml"
    inv.write_text(INVENTORY.format(key=keypair[0], a=a.address, b=b.address, image=built_images["jupyter"],
                                    caddy=built_images["caddy"]))
    exam = {"a": a, "b": b, "key": keypair[0], "work": work, "inv": inv, "state": work / "state", "data": data}
    out, stats = provision(exam, "first")
    assert out.returncode == 0, out.stdout + out.stderr
    exam["first"] = stats
    print(f"exam fleet up in {time.monotonic() - started:.1f} s")
    return exam


def run(exam, task: str, *args: str, env: dict[str, str] | None = None):
    return fab(task, "--hosts", str(exam["inv"]), *args, cwd=exam["work"], state_dir=exam["state"], env=env)


def provision(exam, name: str):
    stats = exam["work"] / f"{name}.json"
    out = run(exam, "provision", env={"FLEET_STATS": str(stats)})
    print(out.stdout, out.stderr, sep="\n")  # where each host got the image and the data from, when a test fails
    return out, json.loads(stats.read_text()) if stats.exists() else {}


def on(exam, host: str, command: str) -> str:
    return ssh(exam[host], exam["key"], command)


def state(exam) -> dict:
    return json.loads((exam["state"] / "exam.json").read_text())


def ids(exam) -> dict[str, str]:
    """Every seat container's id on both hosts: a replaced seat has a new one."""
    return {f"{h}/{line.split()[0]}": line.split()[1] for h in ("a", "b")
            for line in on(exam, h, "docker ps --filter label=fleet.seat --format '{{.Names}} {{.ID}}'").splitlines()}


def test_course_data_is_read_only_in_every_seat_and_sent_once_per_host(exam):
    # the folder left this computer once: one host got it from here, the other from that host as it arrived
    sent = sorted(exam["first"]["hosts"][exam[h].address]["data_bytes"] for h in ("a", "b"))
    assert sent[0] == 0 and MIB < sent[1] < MIB + 20_000, exam["first"]
    assert [r for r in exam["first"]["relayed"] if r[0].startswith("course data ")], exam["first"]
    for h in ("a", "b"):
        # the seat of each host (and its spare) sees the files, owned by root, and cannot change them
        for seat in ("exam-nb-1", "exam-nb-2"):
            assert on(exam, h, f"docker exec {seat} cat /home/jovyan/data/grades.csv") == "student,grade\nada,1\n"
            denied = on(exam, h, f"docker exec {seat} sh -c '{{ echo x > /home/jovyan/data/grades.csv; }} 2>&1; "
                                 f"touch /home/jovyan/data/new 2>&1; rm -f /home/jovyan/data/sub/big.bin 2>&1; true'")
            assert denied.count("Read-only file system") == 3, denied
            root = on(exam, h, f"docker exec --user root {seat} sh -c 'touch /home/jovyan/data/x 2>&1; true'")
            assert "Read-only file system" in root  # not even root in the container
            # the student's own work volume, around the mount, stays theirs
            assert on(exam, h, f"docker exec {seat} sh -c 'echo mine > /home/jovyan/notes.txt && "
                               "stat -c %U /home/jovyan/notes.txt /home/jovyan/data/grades.csv'").split() == ["jovyan", "root"]
        assert on(exam, h, "stat -c '%a %U' /var/lib/fleet/exam/data/fleet /var/lib/fleet/exam/data/fleet/grades.csv"
                  ).split() == ["755", "root", "644", "root"]


def test_a_changed_file_is_sent_alone_and_no_seat_is_replaced(exam):
    before = ids(exam)
    (exam["data"] / "grades.csv").write_text("student,grade\nada,1\ngrace,2\n")
    (exam["data"] / "new.md").write_text("read me\n")
    out, stats = provision(exam, "changed")
    assert out.returncode == 0, out.stdout + out.stderr
    assert sum(stats["hosts"][exam[h].address]["data_bytes"] for h in ("a", "b")) < 5_000  # not the 1 MiB again
    for h in ("a", "b"):
        assert on(exam, h, "docker exec exam-nb-1 cat /home/jovyan/data/grades.csv /home/jovyan/data/new.md") \
            == "student,grade\nada,1\ngrace,2\nread me\n"
    assert ids(exam) == before  # the content is not the seats' spec
    (exam["data"] / "new.md").unlink()
    plan = run(exam, "plan")
    assert plan.returncode == 0 and plan.stdout.count("1 steps") == 2, plan.stdout
    assert "send course data datasets to /var/lib/fleet/exam/data/fleet: 0 new or changed files (0 bytes), 1 removed" \
        in plan.stdout
    out, _ = provision(exam, "removed")
    assert out.returncode == 0, out.stdout + out.stderr
    assert on(exam, "a", "ls /var/lib/fleet/exam/data/fleet") == "grades.csv\nsub\n" and ids(exam) == before
    assert run(exam, "plan").stdout.count("nothing to do") == 2


def test_the_instructors_seat_gets_the_groups_memory(exam):
    memory = {h: int(on(exam, h, "docker inspect --format '{{.HostConfig.Memory}}' exam-nb-1")) for h in ("a", "b")}
    assert memory == {"a": 320 * MIB, "b": 256 * MIB}  # Ada (instructor) sits on a, Grace on b


def test_collect_leaves_the_course_data_out_and_the_empty_spares(exam):
    dest = exam["work"] / "collected"
    out = run(exam, "collect", "--dest", str(dest))
    assert out.returncode == 0, out.stdout + out.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["Ada Lovelace", "Grace Hopper"]
    files = [str(p.relative_to(dest / "Ada Lovelace")) for p in (dest / "Ada Lovelace").rglob("*") if p.is_file()]
    assert "notes.txt" in files and not [f for f in files if f.startswith("data")], files


def test_move_a_student_to_a_spare_with_their_files_then_one_whose_host_is_down(exam):
    on(exam, "a", "docker exec exam-nb-1 sh -c 'mkdir -p /home/jovyan/work && echo essay > /home/jovyan/work/essay.txt'")
    started = time.monotonic()
    out = run(exam, "move", "--seat", "ada lovelace")
    print(f"move with files: {time.monotonic() - started:.1f} s")
    assert out.returncode == 0, out.stdout + out.stderr
    a, b = exam["a"].address, exam["b"].address
    assert f"moved Ada Lovelace: {a}/exam-nb-1 -> {b}/exam-nb-2 (" in out.stdout and " files, " in out.stdout
    token = state(exam)["secrets"][b]["exam-nb-2"]
    assert token in out.stdout and "Ada Lovelace" in out.stdout.splitlines()[-1]  # the new card
    assert on(exam, "b", "docker exec exam-nb-2 sh -c 'cat work/essay.txt notes.txt; stat -c %U work/essay.txt; "
                         "ls data'") == "essay\nmine\njovyan\ngrades.csv\nsub\n"
    assert int(on(exam, "b", "docker inspect --format '{{.HostConfig.Memory}}' exam-nb-2")) == 320 * MIB
    ctx = ssl.create_default_context(cadata=state(exam)["proxy_ca"][b])
    assert seat_http(f"https://{b}:8001/", token, ctx) == 200  # her new card logs her in
    cards = {c["student"]: c for c in json.loads(run(exam, "handout", "--format", "json", "--output", "-").stdout)}
    assert cards["Ada Lovelace"]["url"].startswith(f"https://{b}:8001/")
    assert cards[None]["url"].startswith(f"https://{a}:8000/")  # her old seat: held, nobody's
    assert state(exam)["vacated"] == [{"name": "Ada Lovelace", "host": a, "container": "exam-nb-1"}]

    subprocess.run(["docker", "exec", exam["b"].container, "sh", "-c",  # Grace's host stops answering
                    "systemctl stop ssh.socket 2>/dev/null; systemctl stop ssh.service"], check=True, timeout=60)
    started = time.monotonic()
    out = run(exam, "move", "--seat", "Grace Hopper")
    print(f"move from a dead host: {time.monotonic() - started:.1f} s")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Grace Hopper: {b} does not answer (" in out.stdout and "moved without their files" in out.stdout
    assert f"moved Grace Hopper: {b}/exam-nb-1 -> {a}/exam-nb-2 (no files)" in out.stdout
    assert state(exam)["roster"]["grace hopper"] == {"name": "Grace Hopper", "host": a, "container": "exam-nb-2"}
    full = run(exam, "move", "--seat", "Ada Lovelace")  # no free spare left on another host
    assert full.returncode == 2 and "no free spare of service nb on a host other than" in full.stderr
    assert Path(exam["state"] / "exam.json").stat().st_mode & 0o777 == 0o600
