from __future__ import annotations

import time

from fabric import task

from fleet import converge
from tasks.common import HOSTS_HELP, cli, finish, session


@task(help={"hosts": HOSTS_HELP, "accept-new-host-key": "trust a host whose SSH key changed (rebuilt server)"})
@cli
def provision(c, hosts, accept_new_host_key=False):
    """Install Docker and run every seat on every host of the inventory.

    Safe to run again: hosts that already match are probed once and left
    alone; changed seats are replaced and seats no longer listed removed.
    Exit status 0 only when every host converged.
    """
    started = time.monotonic()
    s = session(c, hosts, accept_new_host_key=accept_new_host_key)
    outcomes = converge.provision(s)
    finish(outcomes, started)
    print(f"Handout with passwords and login links: fab handout --hosts {hosts}")
