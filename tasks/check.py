from __future__ import annotations

from fabric import task

from fleet import inventory, proxy, report
from fleet.seats import expand

from .common import HOSTS_HELP, cli


@task(help={"hosts": HOSTS_HELP})
@cli
def check(c, hosts):
    """Validate the inventory offline; touches no network. Exit status 2 on errors (all of them, in line order).

    Then lists every value the inventory leaves out, as fleet fills it in.
    """
    inv = inventory.load(hosts)
    seats = expand(inv)
    for warning in proxy.warnings(inv):
        print(f"WARNING: {warning}")
    print(f"{hosts}: ok. Fleet {inv.name!r}: {inv.server_count} hosts x {len(seats)} seats "
          f"= {inv.server_count * len(seats)} seats in all"
          + (f"; roster of {len(inv.roster.names)} students" if inv.roster else ""))
    print(report.defaults_text(inv.path.name, inv.defaults))
