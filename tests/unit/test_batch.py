"""Several steps in one round trip: the batch script, run here by a real sh on temporary files."""
from __future__ import annotations

import stat
import subprocess

from fleet.apply import batches
from fleet.batch import batch_command
from fleet.steps import Run, Upload


def run(steps):
    argv, stdin = batch_command(steps)
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=30)


def test_uploads_are_read_by_their_exact_length_and_commands_run_in_order(tmp_path):
    a, b, log = tmp_path / "etc" / "a.env", tmp_path / "b.env", tmp_path / "log"
    secret = b"TOKEN=s3cr3t $(touch /tmp/x) 'q\"\n"
    steps = [Upload("write a", str(a), secret), Run("note", ("sh", "-c", 'echo one >> "$1"', "sh", str(log))),
             Upload("write b", str(b), b"B=2\n", 0o640), Run("note", ("sh", "-c", 'echo two >> "$1"', "sh", str(log)))]
    out = run(steps)
    assert out.returncode == 0, out.stderr
    assert a.read_bytes() == secret and b.read_bytes() == b"B=2\n"
    assert stat.S_IMODE(a.stat().st_mode) == 0o600 and stat.S_IMODE(b.stat().st_mode) == 0o640
    assert log.read_text() == "one\ntwo\n"
    assert b"s3cr3t" not in b" ".join(x.encode() for x in batch_command(steps)[0])  # secrets only on stdin


def test_the_first_failure_stops_the_batch_and_names_its_step(tmp_path):
    later = tmp_path / "later"
    out = run([Run("ok", ("true",)), Run("break", ("sh", "-c", "echo 'no such network: x' >&2; exit 3")),
               Run("later", ("touch", str(later)))])
    assert out.returncode == 1
    assert b"fleet-batch-failed 1 3\nno such network: x" in out.stderr
    assert not later.exists()


def test_each_command_has_its_own_timeout():
    out = run([Run("slow", ("sleep", "5"), timeout=1), Run("after", ("true",))])
    assert b"fleet-batch-failed 0 124" in out.stderr


def test_container_steps_go_together_and_installs_alone():
    steps = [Run("install", ("apt-get", "install", "docker.io")), Run("net", ("docker", "network", "create", "n")),
             Upload("env", "/etc/fleet/x.env", b"x"), Run("run", ("docker", "run", "x")),
             Run("firewall", ("ufw", "allow", "22")), Run("rm", ("rm", "-f", "--", "/etc/x"))]
    assert [[s.title for s in group] for group in batches(steps)] == [
        ["install"], ["net", "env", "run"], ["firewall"], ["rm"]]
    assert batches([]) == []
