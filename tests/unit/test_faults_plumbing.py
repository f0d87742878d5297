"""The pieces the fault suite relies on, each on its own: interruption, the fleet lock, state damage, seat health.

The real faults are injected into real hosts in tests/integration/test_faults.py;
these pin down the local machinery without a network.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fleet import lock as lock_mod
from fleet import state
from fleet.errors import HostError, InputError
from fleet.runner import Stop, fan_out, one_line
from tasks.common import printable


def test_a_signal_during_the_fan_out_stops_new_work_and_every_host_gets_a_result():
    stop, lines = Stop(), []
    started = []

    def work(n: int) -> int:
        started.append(n)
        if n == 0:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the first host works
        for _ in range(100):
            if stop.requested.is_set():
                stop.check(f"step 2 of host {n}")
            time.sleep(0.01)
        return n

    before = signal.getsignal(signal.SIGINT)
    out = fan_out(range(6), work, parallel=1, progress=lines.append, stop=stop, grace=5)
    assert signal.getsignal(signal.SIGINT) is not before  # late signals stay harmless while the task exits
    signal.signal(signal.SIGINT, before)
    assert started == [0] and stop.signal == "SIGINT" and stop.exit_code == 130
    assert out[0].error == "interrupted (SIGINT) before: step 2 of host 0"
    assert all(o.error == "not started: interrupted (SIGINT)" for o in out[1:])
    assert any(line.startswith("SIGINT: starting nothing new") for line in lines)


def test_a_second_signal_aborts_what_is_running():
    stop, closed = Stop(), threading.Event()
    stop.register(closed.set)

    def work(n: int) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)
        closed.wait(5)  # the abort closes the connection under the running command
        raise HostError("connection closed")

    before = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    out = fan_out([1], work, parallel=1, progress=lambda line: None, stop=stop, grace=60)
    signal.signal(signal.SIGTERM, before)
    assert closed.is_set() and stop.aborted.is_set() and stop.exit_code == 143
    assert time.monotonic() - started < 5
    assert out[0].error == "connection closed"


def test_a_host_that_never_returns_is_reported_after_the_abort():
    stop = Stop()
    release = threading.Event()

    def work(n: int) -> int:
        stop.request("SIGINT")
        release.wait(30)  # stuck in something no abort reaches (a TCP connect, say)
        return n

    started = time.monotonic()
    out = fan_out([1], work, parallel=1, progress=lambda line: None, stop=stop, grace=0.2)
    release.set()
    assert out[0].error == "interrupted (SIGINT); this host did not answer in time"
    assert time.monotonic() - started < 10


def test_errors_are_one_bounded_line():
    assert one_line("a\nb\r\n  c") == "a / b / c"
    assert len(one_line("x" * 5000)) == 400


def test_printable_escapes_terminal_controls_and_broken_unicode():
    assert printable("unknown field `\x1b]0;pwned\x07`") == "unknown field `\\x1b]0;pwned\\x07`"
    assert printable("\ud800 é 日本 \t") == "\\ud800 é 日本 \\t"
    printable("\ud800").encode("utf-8")


HOLD = """
import sys, time
from pathlib import Path
from fleet.lock import FleetLock
lock = FleetLock(Path(sys.argv[1]))
assert lock.try_acquire("provision")
print("held", flush=True)
time.sleep(30)
"""


def test_the_fleet_lock_refuses_a_second_process_and_dies_with_its_holder(tmp_path):
    path = tmp_path / ".fleet" / "lab.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = lock_mod.FleetLock(path)
        with pytest.raises(lock_mod.Busy) as e:
            lock.acquire("teardown")
        assert f"`fab provision` (PID {holder.pid}, since " in str(e.value) and e.value.exit_code == 1
        assert stat_mode(path) == 0o600 and stat_mode(path.parent) == 0o700
    finally:
        holder.kill()  # as kill -9 would: the kernel releases the lock
        holder.wait()
    lock = lock_mod.FleetLock(path)
    assert lock.try_acquire("provision")
    lock.release()


def test_a_short_command_holding_the_lock_is_waited_for(tmp_path):
    path = tmp_path / "lab.lock"
    first = lock_mod.FleetLock(path)
    assert first.try_acquire("status")
    threading.Timer(0.5, first.release).start()
    started = time.monotonic()
    lock_mod.FleetLock(path).acquire("provision", wait_for=("status",), wait=10)
    assert 0.3 < time.monotonic() - started < 5


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


GOOD_STATE = {"version": 1, "fleet": "lab", "host_keys": {"h": "ssh-ed25519 AAAA"}, "secrets": {"h": {"c": "s"}}}


@pytest.mark.parametrize("content, why", [
    (b"", "empty"),
    (b'{"version": 1, "fle', "not valid JSON"),
    (b"\xff\xfe{", "not UTF-8"),
    (b"[]", "a JSON list"),
    (b'{"secrets": {"h": {"c": 5}}}', "credentials of h are not text"),
    (b'{"host_keys": {"h": "nospace"}}', "pinned host key"),
])
def test_a_damaged_state_is_set_aside_with_one_line(tmp_path, content, why):
    path = tmp_path / "lab.json"
    path.write_bytes(content)
    (tmp_path / ".lab.json.tmp-x1y2").write_text("half")  # what a process killed while saving leaves
    (tmp_path / ".other.json.tmp-x1y2").write_text("busy")  # another fleet's, saving right now
    with pytest.raises(InputError) as e:
        state.State.load(path, "lab")
    assert why in str(e.value) and "`fab provision` sets it aside" in str(e.value)
    note = state.set_aside(path)
    assert note and why in note and "students keep their passwords" in note and "\n" not in note
    assert not path.exists() and not (tmp_path / ".lab.json.tmp-x1y2").exists()
    assert (tmp_path / ".other.json.tmp-x1y2").exists()
    (aside,) = tmp_path.glob("lab.json.damaged-*")
    assert aside.read_bytes() == content
    assert state.State.load(path, "lab").data["secrets"] == {}


def test_a_good_state_is_left_alone_and_read_only_never_writes(tmp_path):
    path = tmp_path / "lab.json"
    path.write_text(json.dumps(GOOD_STATE))
    assert state.set_aside(path) is None and path.exists()
    s = state.State.load(path, "lab")
    s.read_only = True
    s.adopt("h", "c", "other")
    s.save()
    assert json.loads(path.read_text())["secrets"] == {"h": {"c": "s"}}


def test_progress_lines_from_many_hosts_never_interleave(capsys):
    from tasks.common import progress

    def say(n: int) -> None:
        for i in range(300):
            progress(f"  host-{n}: step {i} of a long title that takes a while to write out")

    threads = [threading.Thread(target=say, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2400
    assert all(re.fullmatch(r"  host-\d: step \d+ of a long title that takes a while to write out", x) for x in lines)
