from __future__ import annotations

import json

from fabric import task
from invoke.exceptions import Exit

from fleet import converge, report

from .common import HOSTS_HELP, cli, session


@task(name="plan", help={"hosts": HOSTS_HELP, "json": "print the plan as JSON"})
@cli
def plan_(c, hosts, json_=False):
    """Dry run: probe every host and show the exact commands, change nothing.

    Secrets are never shown: files that hold them appear as their path and size.
    First it lists every value the inventory leaves out, as fleet fills it in.
    """
    s = session(c, hosts)
    outcomes = converge.provision(s, dry_run=True)
    if json_:
        print(json.dumps(report.plan_data(outcomes), indent=2))
    else:
        print(report.defaults_text(s.inventory.path.name, s.inventory.defaults))  # the same from any folder
        print(report.plan_text(outcomes))
    if any(not o.ok for o in outcomes):
        raise Exit(code=1)
