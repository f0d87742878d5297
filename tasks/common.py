"""What every task shares: loading the inventory, turning errors into exit codes."""
from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable

from invoke.exceptions import Exit

from fleet import inventory
from fleet.converge import Session
from fleet.errors import FleetError
from fleet.report import seats_table, summary

HOSTS_HELP = "the inventory file (YAML), e.g. inventories/lab.yml"


def cli(fn: Callable) -> Callable:
    """Run a task body so that the user sees one clear line, never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003
        try:
            return fn(*args, **kwargs)
        except FleetError as e:
            raise Exit(f"fleet: {e}", code=e.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("fleet: interrupted; run the same command again to finish the job", code=130) from None
    return wrapper


def session(c, hosts: str, *, accept_new_host_key: bool = False) -> Session:  # noqa: ANN001
    """Load the inventory (exit 2 on bad input) and open the fleet's state."""
    inv = inventory.load(hosts)
    password = c.config.get("sudo", {}).get("password") if hasattr(c, "config") else None
    return Session(inv, sudo_password=password, accept_new_host_key=accept_new_host_key, progress=progress)


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def finish(outcomes: list, started: float, verb: str = "converged") -> None:
    """Print the table and the summary; exit 1 unless every host succeeded."""
    print(seats_table(outcomes))
    print(summary(outcomes, time.monotonic() - started, verb))
    if any(not o.ok for o in outcomes):
        raise Exit(code=1)
