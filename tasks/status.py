from __future__ import annotations

import dataclasses
import json
import time

from fabric import task
from invoke.exceptions import Exit

from fleet import converge
from fleet.report import status_table, summary

from .common import HOSTS_HELP, cli, session


@task(help={"hosts": HOSTS_HELP, "json": "print the status as JSON",
            "watch": "refresh every N seconds until Ctrl-C (e.g. --watch 5)"})
@cli
def status(c, hosts, json_=False, watch=0):
    """Every seat: state, restarts, health at its URL, CPU and memory; every host: load, memory, disk.

    A host that does not answer shows as failed within the connect timeout
    instead of stalling the table. Exit status 1 when a host failed.
    """
    s = session(c, hosts)
    while True:
        started = time.monotonic()
        outcomes = converge.status(s)
        if json_:
            print(json.dumps([
                {"host": o.item.id, "error": o.error} if not o.ok else
                {"host": o.item.id, "os": o.value.os, "docker": o.value.docker, "usage": o.value.usage,
                 "certificate": o.value.certificate, "notes": o.value.notes,
                 "seats": [dataclasses.asdict(x) for x in o.value.seats]}
                for o in outcomes], indent=2))
        else:
            if watch:
                print("\033[H\033[2J", end="")  # clear the terminal: the table is redrawn in place
            print(status_table(outcomes))
            print(summary(outcomes, time.monotonic() - started, verb="answered"))
        if not watch:
            break
        time.sleep(max(0.0, float(watch) - (time.monotonic() - started)))
    if any(not o.ok for o in outcomes):
        raise Exit(code=1)
