"""The one fan-out: a bounded pool over hosts, fail-slow, a result per host.

Fabric's ThreadingGroup starts a thread per host with no cap and no timeout;
this pool runs at most ``parallel`` hosts at once, turns every failure into
that host's result (one host never stops the others) and reports progress as
each host finishes.

Interruption (Ctrl-C = SIGINT, or SIGTERM) is cooperative while the pool
runs: the signal only sets :data:`STOP`. Hosts not started yet are not
started, and every host that is working stops *between* two remote commands
(the SSH layer checks :data:`STOP` before each one). A command already running
on a host gets up to :data:`GRACE` seconds to finish, so that it is not cut
off half-applied; after that, or at a second signal, every connection is
closed at once (:meth:`Stop.abort`). Either way the pool returns a result for
every host, so the caller can print its table and summary, and the state file
is never written to from a signal handler.
"""
from __future__ import annotations

import queue
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from fleet.errors import FleetError, HostError
from fleet.events import Event, emit

T = TypeVar("T")
R = TypeVar("R")

GRACE = 10.0  # seconds a running remote command gets to finish after Ctrl-C/SIGTERM
ABORT_WAIT = 5.0  # seconds to wait for hosts to notice an abort before reporting them anyway
MAX_ERROR = 400  # characters of one host's error line


class Interrupted(HostError):
    """This host's work was stopped because the user interrupted the run."""


class Stop:
    """Has the user asked the run to stop? Shared by the fan-out and the SSH layer."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.aborted = threading.Event()
        self.signal = ""  # "SIGINT" or "SIGTERM" once requested
        self.requested_at = 0.0
        self._closers: dict[int, Callable[[], None]] = {}
        self._lock = threading.Lock()

    def request(self, name: str) -> None:
        if not self.requested.is_set():
            self.signal, self.requested_at = name, time.monotonic()
            self.requested.set()

    def abort(self) -> None:
        """Stop at once: close every registered connection (their commands fail, their threads end)."""
        self.aborted.set()
        with self._lock:
            closers = list(self._closers.values())
        for close in closers:
            try:
                close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is going away anyway
                pass

    def register(self, closer: Callable[[], None]) -> int:
        with self._lock:
            key = id(closer)
            self._closers[key] = closer
        if self.aborted.is_set():
            closer()
        return key

    def unregister(self, key: int) -> None:
        with self._lock:
            self._closers.pop(key, None)

    def check(self, doing: str) -> None:
        """Raise Interrupted instead of starting ``doing`` once a stop was requested."""
        if self.requested.is_set():
            raise Interrupted(f"interrupted ({self.signal}) before: {doing}")

    @property
    def exit_code(self) -> int:
        return 143 if self.signal == "SIGTERM" else 130

    def reset(self) -> None:
        self.__init__()


STOP = Stop()


@dataclass
class Outcome(Generic[T, R]):
    item: T
    value: R | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def one_line(text: str) -> str:
    """A host's error as one bounded line, whatever the exception carried."""
    text = re.sub(r"\s*[\r\n]+\s*", " / ", text.strip()) or "failed (no message)"
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def fan_out(
    items: Iterable[T],
    work: Callable[[T], R],
    *,
    parallel: int,
    label: Callable[[T], str] = str,
    progress: Callable[[str], None] | None = None,
    stop: Stop = STOP,
    grace: float = GRACE,
) -> list[Outcome[T, R]]:
    """Run ``work`` on every item, at most ``parallel`` at a time; results in input order.

    Returns a result for every item even when interrupted (see the module's
    docstring); ``stop.requested`` then tells the caller that it was.
    """
    items = list(items)
    if progress is None:
        progress = _stderr
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    done: queue.SimpleQueue[tuple[int, Outcome[T, R]]] = queue.SimpleQueue()
    for i in range(len(items)):
        todo.put(i)

    def worker() -> None:
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            item = items[i]
            if stop.requested.is_set():
                done.put((i, Outcome(item, error=f"not started: interrupted ({stop.signal})")))
                continue
            emit(progress, Event(kind="start", plain=False, host=label(item)))
            try:
                outcome = Outcome(item, value=work(item))
            except FleetError as e:
                outcome = Outcome(item, error=one_line(str(e)))
            except Exception as e:  # a bug must not stop the other hosts; say what it was
                outcome = Outcome(item, error=one_line(f"internal error: {type(e).__name__}: {e}"))
            done.put((i, outcome))

    # Daemon threads: a host stuck in a TCP connect (bounded by its connect
    # timeout) must not hold the process open after an interrupted run has
    # printed its summary.
    threads = [threading.Thread(target=worker, name=f"fleet-host-{n}", daemon=True)
               for n in range(max(1, min(parallel, len(items))))]
    outcomes: dict[int, Outcome[T, R]] = {}
    told = aborted_at = None
    emit(progress, Event(kind="fanout", plain=False, hosts=[label(item) for item in items]))
    with _signals_to(stop):
        for t in threads:
            t.start()
        while len(outcomes) < len(items):
            try:
                i, o = done.get(timeout=0.2)
            except queue.Empty:
                i = None
            now = time.monotonic()
            if stop.requested.is_set() and told is None:
                told = now
                progress(f"{stop.signal}: starting nothing new; commands running now get up to {grace:.0f} s "
                         "to finish (press Ctrl-C again to stop at once)")
            if stop.requested.is_set() and not stop.aborted.is_set() and now - stop.requested_at > grace:
                stop.abort()
            if stop.aborted.is_set() and aborted_at is None:
                aborted_at = now
                progress("closing every connection now")
            if i is None:
                if aborted_at is not None and now - aborted_at > ABORT_WAIT:
                    break
                continue
            outcomes[i] = o
            progress(Event(f"[{len(outcomes)}/{len(items)}] {label(items[i])}: {'ok' if o.ok else o.error}", "done",
                           host=label(items[i]), error=o.error or "", finished=len(outcomes), total=len(items)))
    for i, item in enumerate(items):
        if i not in outcomes:
            outcomes[i] = Outcome(item, error=f"interrupted ({stop.signal}); this host did not answer in time")
    emit(progress, Event(kind="end", plain=False))
    return [outcomes[i] for i in range(len(items))]


class _signals_to:
    """While the pool runs, SIGINT and SIGTERM only ask it to stop (a second one aborts)."""

    def __init__(self, stop: Stop):
        self.stop = stop
        self.saved: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.stop.requested.is_set():
            self.stop.abort()
        else:
            self.stop.request(signal.Signals(signum).name)

    def __enter__(self) -> _signals_to:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self.saved[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self.saved.items():
            # Once a stop was asked for, the task only prints its table and exits with 130/143: a
            # further signal must not turn that into a KeyboardInterrupt in the middle of it.
            signal.signal(s, self._handle if self.stop.requested.is_set() else handler)


_print_lock = threading.Lock()


def _stderr(line: str) -> None:
    with _print_lock:  # one write per line: threads' lines never interleave
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
