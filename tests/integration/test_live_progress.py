"""The live view on a real terminal, and the plain lines through a pipe, against a real test host.

`fab provision` runs in a tmux pane (a real terminal: tmux's own pty, TERM
set by tmux) against a fresh test host: Docker is installed and the 481 MB
Jupyter image pushed, so there are steps, time on them and a transfer to
show. The pane is captured while it runs: the host's line with its step and
seconds on it, the transfer's bytes and the hosts-done bar must appear, and
no raw escape sequence may be left in the text. Then `fab teardown ... | cat`
on the same host prints today's plain lines, nothing animated. The smallest
inventory (defaults for port, publish, memory and CPU limits) is what runs.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
import uuid

import pytest

from tests.integration.conftest import FAB, ROOT

pytestmark = pytest.mark.hosts

INVENTORY = """\
name: live
ssh: {{key: {key}}}
hosts: [{address}]
docker: {{source: distro}}
tls: off
services:
  - {{name: nb, image: {image}, push: true}}
"""

GARBAGE = re.compile(r"\x1b|\[\?25[lh]|\[\d*[ABCDGJK](?![\w/])")  # what a terminal should have eaten


@pytest.fixture
def tmux():
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux; .ci/run does)")
    socket = f"fleet-test-{uuid.uuid4().hex[:6]}"

    def run(*args: str) -> str:
        return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=30).stdout

    yield run
    run("kill-server")


def test_live_view_in_a_terminal_and_plain_lines_in_a_pipe(start_hosts, built_images, keypair, tmp_path, tmux):
    (host,) = start_hosts("live-a")
    lab = tmp_path / "lab.yml"
    lab.write_text(INVENTORY.format(key=keypair[0], address=host.address, image=built_images["jupyter"]))
    env = {"FLEET_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    command = shlex.join(["env", "-u", "NO_COLOR", "-u", "COLUMNS", "-u", "LINES", *(f"{k}={v}" for k, v in env.items()),
                          *FAB, "--search-root",
                          str(ROOT), "provision", "--hosts", str(lab)])
    tmux("new-session", "-d", "-s", "live", "-x", "150", "-y", "40", "-c", str(tmp_path),
         f"{command}; echo EXIT=$?; sleep 600")
    frames, deadline = [], time.monotonic() + 600
    while time.monotonic() < deadline:
        frame = tmux("capture-pane", "-p", "-t", "live")
        frames.append(frame)
        if "EXIT=" in frame:
            break
        time.sleep(0.5)
    final = frames[-1]
    print(tmux("display-message", "-p", "-t", "live", "pane #{pane_width}x#{pane_height}"), final)
    (tmp_path / "frames.txt").write_text("\n=====\n".join(frames))
    assert "EXIT=0" in final, final
    seen = "\n".join(frames)
    address = re.escape(host.address)
    # a host line: the host, its current step, the seconds it has been on it
    steps = re.findall(rf"^\s*{address}\s+(\S.*?)\s+(\d+)s\s*$", seen, re.M)
    assert steps, seen[-3000:]
    assert len({step for step, _ in steps}) >= 2, steps  # it moved on from one step to the next
    assert any(int(s) >= 1 for _, s in steps), steps  # and the time on a step counts
    assert re.search(r"image \S+: 0 of 1 hosts have it .*MB", seen), seen[-3000:]  # the transfer: bytes so far
    assert re.search(r"hosts done .*0/1", seen) and re.search(r"hosts done .*1/1", seen)  # the overall bar
    assert f"[1/1] {host.address}: ok" in final  # the done line stays above the view
    assert re.search(rf"^{address}\s+live-nb-1\s", final, re.M)  # then the table, as before
    for frame in frames:
        assert not GARBAGE.search(frame), repr(frame[-2000:])

    # the same fleet through a pipe: plain lines only
    piped = shlex.join([*FAB, "--search-root", str(ROOT), "teardown", "--hosts", str(lab), "--yes"]) + " 2>&1 | cat"
    out = subprocess.run(["bash", "-c", piped], cwd=tmp_path, env={**os.environ, **env, "TERM": "xterm-256color"},
                         capture_output=True, text=True, timeout=300)
    print(out.stdout)
    lines = out.stdout.splitlines()
    assert f"[1/1] {host.address}: ok" in lines, out.stdout
    assert "\x1b" not in out.stdout and "\r" not in out.stdout
    assert not any("hosts done" in line for line in lines)
