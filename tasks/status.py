from __future__ import annotations

import dataclasses
import json
import time

from fabric import task
from invoke.exceptions import Exit

from fleet import converge
from tasks.common import HOSTS_HELP, cli, finish, session


@task(help={"hosts": HOSTS_HELP, "json": "print the status as JSON"})
@cli
def status(c, hosts, json_=False):
    """Show every seat's container state on every host (one probe per host)."""
    started = time.monotonic()
    outcomes = converge.status(session(c, hosts))
    if json_:
        print(json.dumps([
            {"host": o.item.id, "error": o.error} if not o.ok else
            {"host": o.item.id, "os": o.value.os, "docker": o.value.docker,
             "seats": [dataclasses.asdict(s) for s in o.value.seats]}
            for o in outcomes], indent=2))
        if any(not o.ok for o in outcomes):
            raise Exit(code=1)
        return
    finish(outcomes, started, verb="answered")
