from __future__ import annotations

from pathlib import Path

from fabric import task
from invoke.exceptions import Exit

from fleet import handout as handout_mod
from fleet import inventory
from fleet.state import State, path_for
from tasks.common import HOSTS_HELP, cli

FORMATS = ("table", "csv", "json")


@task(help={"hosts": HOSTS_HELP, "format": "table (printed), csv or json (written to a file)",
            "output": "where to write csv/json (default: beside the state, mode 0600); - prints it"})
@cli
def handout(c, hosts, format="table", output=None):  # noqa: A002 (the flag is --format)
    """Seat addresses with their passwords or tokens, for the students.

    Read from the fleet's state; contacts no host.
    """
    if format not in FORMATS:
        raise Exit(f"fleet: --format must be one of {', '.join(FORMATS)}, not {format!r}", code=2)
    inv = inventory.load(hosts)
    state = State.load(path_for(inv.path, inv.name), inv.name)
    rows = handout_mod.rows(inv, state)
    if not rows:
        raise Exit(f"fleet: no seats have credentials yet; run fab provision --hosts {hosts} first", code=1)
    text = handout_mod.render(rows, format)
    if format == "table" or output == "-":
        print(text, end="")
        return
    path = Path(output) if output else state.path.with_name(f"{inv.name}-handout.{format}")
    handout_mod.write_private(path, text)
    print(f"Wrote {len(rows)} seats to {path} (mode 0600)")
