from __future__ import annotations

import sys
from pathlib import Path

from fabric import task
from invoke.exceptions import Exit

from fleet import handout as handout_mod
from fleet import placement

from .common import HOSTS_HELP, cli, command, session

FORMATS = ("table", "csv", "json", "html")


@task(help={"hosts": HOSTS_HELP,
            "format": "table (printed), csv, json or html (a page of login cards to print; written to a file)",
            "output": "where to write csv/json/html (default: beside the state, mode 0600); - prints it"})
@cli
def handout(c, hosts, format="table", output=None):  # noqa: A002 (the flag is --format)
    """Seat addresses with their passwords or tokens, for the students.

    Read from the fleet's state; contacts no host. With a roster, new students
    are placed on free seats here too (and remembered), so the cards can be
    printed before the next provision.
    """
    if format not in FORMATS:
        raise Exit(f"fleet: --format must be one of {', '.join(FORMATS)}, not {format!r}", code=2)
    s = session(c, hosts)  # the fleet's lock: placing students writes the state, never beside a provision
    inv, state = s.inventory, s.state
    placed = placement.assign_students(inv, state)
    cards = placement.cards(inv, state, placed.seats if placed else None)
    for line in handout_mod.roster_notes(placed, cards):
        print(f"fleet: {line}", file=sys.stderr)
    if not cards:
        raise Exit(f"fleet: no seats have credentials yet; run {command('provision --hosts ' + hosts)} first", code=1)
    settings = inv.model.handout
    text = handout_mod.render(cards, format, title=settings.title or inv.name,
                              certificate_note=settings.certificate_note)
    if format == "table" or output == "-":
        print(text, end="")
        return
    path = Path(output) if output else state.path.with_name(f"{inv.name}-handout.{format}")
    handout_mod.write_private(path, text)
    print(f"Wrote {len(cards)} seats to {path} (mode 0600)")
