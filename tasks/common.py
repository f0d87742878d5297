"""What every task shares: loading the inventory, turning errors into exit codes.

Also the process-wide rules a classroom needs:

- One command at a time per fleet: provision, teardown (and any task not
  listed in READ_ONLY_BESIDE) hold ``.fleet/NAME.lock`` while they run and
  refuse with one line naming the holder when another has it. ``status`` and
  ``plan`` take it when free (they may pin host keys), and otherwise run
  beside the holder without writing the state.
- Ctrl-C (SIGINT) and SIGTERM: while hosts are worked on, fleet.runner turns
  them into an orderly stop and the task still prints its table; the exit
  status is then 130 (SIGINT) or 143 (SIGTERM). Anywhere else they end the
  task at once with one line; the state file is only ever replaced whole.
- Whatever an error message quotes from hostile input (control characters,
  terminal escapes, broken Unicode) is printed escaped.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from invoke.exceptions import Exit

from fleet import inventory
from fleet import lock as lock_mod
from fleet import state as state_mod
from fleet.errors import FleetError, InputErrors
from fleet.events import Event, live_wanted
from fleet.report import seats_table, summary
from fleet.runner import STOP
from fleet.session import Session

if TYPE_CHECKING:
    from fleet.live import LiveView

HOSTS_HELP = "the inventory file (YAML), e.g. inventories/lab.yml"
COMMAND = "fab"  # what the teacher types: `fleet` for the installed tool (tasks/cli.py sets it)


def command(args: str) -> str:
    """A command line to suggest, in the form the teacher is using: ``fab ARGS`` or ``fleet ARGS``."""
    return f"{COMMAND} {args}"


READ_ONLY_BESIDE = ("status", "plan")  # tasks that may run, writing nothing, while another holds the lock
_task: contextvars.ContextVar[str] = contextvars.ContextVar("fleet_task", default="")
_locks: dict[str, lock_mod.FleetLock] = {}  # held until this process ends


class Terminated(KeyboardInterrupt):
    """SIGTERM outside the fan-out: handled like Ctrl-C."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated


def printable(text: str) -> str:
    """``text`` with control characters and broken Unicode escaped, safe for any terminal."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def cli(fn: Callable) -> Callable:
    """Run a task body so that the user sees one clear line, never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003
        token = _task.set(fn.__name__.strip("_"))
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _terminated)
        try:
            result = fn(*args, **kwargs)
        except FleetError as e:  # several problems of one input (an inventory's): one line each
            lines = e.lines() if isinstance(e, InputErrors) else [str(e)]
            raise Exit("\n".join(f"fleet: {printable(line)}" for line in lines), code=e.exit_code) from None
        except KeyboardInterrupt as e:
            how = "SIGTERM" if isinstance(e, Terminated) else "SIGINT"
            raise Exit(f"fleet: interrupted ({how}); run the same command again to finish the job",
                       code=143 if isinstance(e, Terminated) else 130) from None
        except Exit:
            if STOP.requested.is_set():  # the table is printed; say why it is incomplete
                raise Exit(f"fleet: interrupted ({STOP.signal}); run the same command again to finish the job",
                           code=STOP.exit_code) from None
            raise
        finally:
            _task.reset(token)
            _exiting()
        return result
    return wrapper


def _exiting() -> None:
    """The task is over (done, failed or interrupted): a signal now must not turn the exit into a traceback
    or a death by signal halfway through printing; the process ends in a moment anyway."""
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)


def session(c, hosts: str, *, accept_new_host_key: bool = False) -> Session:  # noqa: ANN001
    """Load the inventory (exit 2 on bad input), take the fleet's lock and open its state."""
    inv = inventory.load(hosts)
    path = state_mod.path_for(inv.path, inv.name)
    read_only = not _lock(lock_mod.path_for(path), _task.get() or "provision")
    if not read_only:
        notice = state_mod.set_aside(path)
        if notice:
            progress(f"fleet: {printable(notice)}")
    password = c.config.get("sudo", {}).get("password") if hasattr(c, "config") else None
    s = Session(inv, sudo_password=password, accept_new_host_key=accept_new_host_key, progress=progress)
    s.state.read_only = read_only
    return s


def _lock(path, task: str) -> bool:  # noqa: ANN001
    """Hold the fleet's lock for the rest of this process; False when a read-only task runs beside another."""
    key = str(path)
    if key in _locks:
        return True
    lock = lock_mod.FleetLock(path)
    if task in READ_ONLY_BESIDE:
        if not lock.try_acquire(task):
            progress(f"fleet: {lock.describe(lock.holder())} is working on this fleet; "
                     f"this {task} shows the hosts as they are and writes nothing")
            return False
    else:
        lock.acquire(task, wait_for=READ_ONLY_BESIDE)
    _locks[key] = lock
    return True


def confirmer(yes: bool, task: str) -> Callable[[str, str], bool]:
    """How a task asks before it creates, destroys or removes: show what, then ask.

    ``--yes`` answers for scripts; without a terminal and without --yes the
    task stops with exit status 2 before anything changed.
    """
    def confirm(what: str, question: str) -> bool:
        print(what, flush=True)
        if yes:
            return True
        if not sys.stdin.isatty():
            raise Exit(f"fleet: {task} needs confirmation; run it in a terminal or add --yes", code=2)
        return input(question).strip().lower() in ("y", "yes")
    return confirm


_print_lock = threading.Lock()


class _Progress:
    """Where every progress line of a task goes: one whole line on stderr (hosts' threads call this at once,
    and their lines must not interleave), or, while a live view shows, to it (fleet/live.py)."""

    def __init__(self) -> None:
        self.view: LiveView | None = None

    @property
    def live(self) -> bool:
        """Do the producers send live-only events (fleet.events.emit)? Only while a view takes them."""
        return self.view is not None

    def __call__(self, line: str) -> None:
        view = self.view
        if view is not None:
            view(line)
            return
        if isinstance(line, Event) and not line.plain:
            return
        with _print_lock:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()


progress = _Progress()
PLAIN_HELP = "plain progress lines, as in a log, even on a terminal (also NO_COLOR=1; the default off a terminal)"


@contextlib.contextmanager
def showing_progress(plain: bool = False) -> Iterator[None]:
    """While the block runs: on a terminal (unless ``plain`` or NO_COLOR), a live view of the hosts, their steps
    and transfers; elsewhere today's plain lines, nothing animated."""
    if plain or progress.view is not None or not live_wanted(sys.stderr, os.environ):
        yield
        return
    from rich.console import Console  # only now: a run without a live view does not import rich

    from fleet.live import LiveView

    view = LiveView(Console(file=sys.stderr, highlight=False, markup=False, emoji=False))
    progress.view = view
    try:
        yield
    finally:
        progress.view = None
        view.close()


def finish(outcomes: list, started: float, verb: str = "converged") -> None:
    """Print the table and the summary; exit 1 unless every host succeeded."""
    print(seats_table(outcomes))
    print(summary(outcomes, time.monotonic() - started, verb))
    if any(not o.ok for o in outcomes):
        raise Exit(code=1)
