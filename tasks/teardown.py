from __future__ import annotations

import sys
import time

from fabric import task
from invoke.exceptions import Exit

from fleet import converge
from tasks.common import HOSTS_HELP, cli, finish, session


@task(help={"hosts": HOSTS_HELP, "yes": "do not ask for confirmation"})
@cli
def teardown(c, hosts, yes=False):
    """Remove every seat container of the fleet from every host.

    Finds containers by the fleet's label, so it also removes seats the state
    no longer knows. Docker and images stay installed.
    """
    s = session(c, hosts)
    if not yes:
        question = f"Remove every seat of fleet {s.inventory.name!r} on {len(s.inventory.hosts)} hosts? [y/N] "
        if not sys.stdin.isatty():
            raise Exit("fleet: teardown needs confirmation; run it in a terminal or add --yes", code=2)
        if input(question).strip().lower() not in ("y", "yes"):
            raise Exit("fleet: nothing removed", code=1)
    started = time.monotonic()
    outcomes = converge.teardown(s)
    for o in outcomes:
        if o.ok:
            print(f"{o.item.id}: removed {len(o.value.removed)} containers")
    finish(outcomes, started, verb="cleaned")
