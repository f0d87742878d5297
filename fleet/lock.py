"""One command at a time per fleet: a lock file beside the state.

``.fleet/NAME.lock`` is held with ``flock`` for as long as a command that
changes the fleet runs; the kernel releases it when that process ends, however
it ends (even ``kill -9``), so a stale lock cannot block anyone. The file's
text says who holds it, for the message the next command prints.
"""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from fleet.errors import FleetError


class Busy(FleetError):
    """Another command is working on the same fleet; nothing was touched."""

    exit_code = 1


def path_for(state_path: Path) -> Path:
    return state_path.with_suffix(".lock")


class FleetLock:
    """An exclusive, non-blocking lock on one fleet."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def try_acquire(self, command: str) -> bool:
        """Take the lock if it is free and write who holds it; False if another process has it."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {command} {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        self.fd = fd
        return True

    def acquire(self, command: str, *, wait_for: tuple[str, ...] = (), wait: float = 30.0) -> None:
        """Take the lock or raise Busy naming the holder.

        While the holder is one of ``wait_for`` (short commands such as
        ``status``), wait up to ``wait`` seconds for it instead of refusing.
        """
        end = time.monotonic() + wait
        while not self.try_acquire(command):
            holder = self.holder()
            if holder.split()[1:2] and holder.split()[1] in wait_for and time.monotonic() < end:
                time.sleep(0.5)
                continue
            raise Busy(f"another fleet command is working on this fleet: {self.describe(holder)}; "
                       f"wait for it to finish (or stop it), then run this again (lock file {self.path})")

    def holder(self) -> str:
        try:
            return self.path.read_text(errors="replace").strip()
        except OSError:
            return ""

    @staticmethod
    def describe(holder: str) -> str:
        parts = holder.split(" ", 2)
        if len(parts) == 3 and parts[0].isdigit():
            return f"`fab {parts[1]}` (PID {parts[0]}, since {parts[2]})"
        return "another process"

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None
