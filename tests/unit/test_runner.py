"""The fan-out: bounded, fail-slow, one result per host in input order."""
import threading
import time

from fleet.errors import HostError
from fleet.runner import fan_out


def test_bounded_fail_slow_and_ordered():
    running, peak, lock = 0, 0, threading.Lock()
    lines = []

    def work(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        if n == 2:
            raise HostError("host 2 is down")
        if n == 5:
            raise KeyError("bug")
        return n * 10

    out = fan_out(range(8), work, parallel=3, progress=lines.append)
    assert peak == 3
    assert [o.item for o in out] == list(range(8))
    assert [o.value for o in out if o.ok] == [0, 10, 30, 40, 60, 70]
    assert out[2].error == "host 2 is down"
    assert out[5].error == "internal error: KeyError: 'bug'"
    assert len(lines) == 8 and sum("host 2 is down" in line for line in lines) == 1
    assert lines[-1].startswith("[8/8] ")
