from __future__ import annotations

from fabric import task

from fleet import coursedata, inventory, proxy, report
from fleet.inventory.services import group_key
from fleet.seats import expand

from .common import HOSTS_HELP, cli


@task(help={"hosts": HOSTS_HELP})
@cli
def check(c, hosts):
    """Validate the inventory offline; touches no network. Exit status 2 on errors (all of them, in line order).

    Then lists every value the inventory leaves out, as fleet fills it in.
    """
    inv = inventory.load(hosts)
    seats = [s for s in expand(inv) if not s.spare]
    spares = sum(s.spares for s in inv.services)
    for warning in proxy.warnings(inv):
        print(f"WARNING: {warning}")
    print(f"{hosts}: ok. Fleet {inv.name!r}: {inv.server_count} hosts x {len(seats)} seats "
          f"= {inv.server_count * len(seats)} seats in all"
          + (f" (and {spares} spare{'s' * (spares != 1)} per host for fab move)" if spares else "")
          + (f"; roster of {len(inv.roster.names)} students" if inv.roster else ""))
    for line in group_lines(inv) + data_lines(inv):
        print(line)
    print(report.defaults_text(inv.path.name, inv.defaults))


def shown(value: object, none: str) -> str:
    return none if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def data_lines(inv: inventory.Inventory) -> list[str]:
    """Where each service's seats see the course data (read-only)."""
    out = []
    for svc in inv.services:
        found = coursedata.settings_of(inv, svc)
        if found is not None:
            out.append(f"course data {found[1].src} (each host once): read-only at {svc.data_mount(found[1])} in the "
                       f"seats of {svc.name}")
    return out


def group_lines(inv: inventory.Inventory) -> list[str]:
    """A line per roster group: its students, and the limits each service gives them (a misspelt group shows
    as getting none)."""
    if inv.roster is None or not inv.roster.groups:
        return []
    counts: dict[str, tuple[str, int]] = {}
    for _, group in inv.roster.groups:
        name, n = counts.get(group_key(group), (group, 0))
        counts[group_key(group)] = (name, n + 1)
    out = []
    for name, n in counts.values():
        given = []
        for svc in inv.services:
            limits = svc.group_limits(name)
            if limits is not None:
                given.append(f"{svc.name}: " + ", ".join(f"{k} {shown(getattr(limits, k), 'none')}"
                                                         for k in sorted(limits.model_fields_set)))
        out.append(f"group {name}: {n} student{'s' * (n != 1)}; "
                   + ("; ".join(given) if given else "no service gives it limits of its own (services' groups:)"))
    return out
