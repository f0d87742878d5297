from __future__ import annotations

import time

from fabric import task
from invoke.exceptions import Exit

from fleet import converge
from fleet.servers import lifecycle

from .common import HOSTS_HELP, PLAIN_HELP, cli, command, confirmer, finish, session, showing_progress


@task(help={"hosts": HOSTS_HELP, "yes": "do not ask for confirmation",
            "keep-work": "keep the seats' work volumes (the students' files) on the hosts", "plain": PLAIN_HELP})
@cli
def teardown(c, hosts, yes=False, keep_work=False, plain=False):
    """Remove every seat container of the fleet from every host, and destroy its droplets.

    Finds containers by the fleet's label and droplets by the fleet's tag, so
    it also removes what the state no longer knows; it returns once the API
    lists no droplet of the fleet. Docker and images stay installed on the
    inventory's own hosts.
    """
    s = session(c, hosts)
    cloud = lifecycle.survey(s) if lifecycle.has_servers(s) else None
    what = "\n".join([f"Fleet {s.inventory.name!r}:"]
                     + ([f"remove every seat on {len(s.inventory.hosts)} hosts"
                         + ("" if keep_work else f", with the students' files (run {command('collect')} first to keep them)")]
                        if s.inventory.hosts else [])
                     + ([cloud.describe()] if cloud else []))
    if not confirmer(yes, "teardown")(what, f"Remove every seat of fleet {s.inventory.name!r}"
                                            + (" and destroy its droplets" if cloud else "") + "? [y/N] "):
        raise Exit("fleet: nothing removed", code=1)
    started = time.monotonic()
    with showing_progress(plain):
        outcomes = converge.teardown(s, keep_work=keep_work) if s.inventory.hosts else []
    for o in outcomes:
        if o.ok:
            print(f"{o.item.id}: removed {len(o.value.removed)} containers")
    if cloud:
        print(lifecycle.teardown(s, cloud))
    if outcomes:
        finish(outcomes, started, verb="cleaned")
