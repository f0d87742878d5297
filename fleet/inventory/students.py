"""The ``roster:`` section: the students, read once the rest of the inventory is valid.

``roster:`` names a CSV file beside the inventory or lists the names in the
YAML; either way the names are checked (fleet/roster.py holds the rules and
the placement of students on seats) and must fit the fleet's seats. It comes
last because it needs the whole inventory: seats come from the hosts, the
droplets and the services together. (Named students.py, not roster.py, so as
not to be mistaken for fleet/roster.py, which it uses.)
"""
from __future__ import annotations

from pathlib import Path

from fleet import roster as roster_mod
from fleet.errors import InputError
from fleet.inventory.base import Path_, line_for
from fleet.inventory.model import Inventory


def load_roster(inv: Inventory, lines: dict[Path_, int]) -> roster_mod.Roster | None:
    """Read the roster (a CSV file relative to the inventory, or the YAML list) and check it fits the seats."""
    spec, file, line = inv.model.roster, str(inv.path), line_for(lines, ("roster",))
    where = "roster"
    if inv.model.mode == "hub" and inv.model.hub.users is not None:  # the hub's own list of students
        spec, line, where = inv.model.hub.users, line_for(lines, ("hub", "users")), "hub.users"
    if spec is None:
        return None
    if isinstance(spec, str):
        roster = roster_mod.read_csv((inv.path.parent / Path(spec).expanduser()).resolve(), file, line)
    else:
        entries = []
        for i, item in enumerate(spec):
            at, here = line_for(lines, (*where.split("."), i)), f"{where}[{i}]"
            name, group = item, None
            if isinstance(item, dict):  # {name: Ada Lovelace, group: instructor}
                unknown = sorted(str(k) for k in item if k not in ("name", "group"))
                if unknown or "name" not in item:
                    raise InputError(f"a roster entry written as a mapping has `name:` and optionally `group:`"
                                     f"{', not ' + ', '.join(unknown) if unknown else ''}", file=file, line=at, field=here)
                name, group = item["name"], item.get("group")
                if group is not None and not isinstance(group, str):
                    raise InputError("a group is text, e.g. group: instructor", file=file, line=at, field=f"{here}.group")
            if not isinstance(name, str):
                raise InputError("each roster entry is one name on a `- ` line (or `- {name: ..., group: ...}`)",
                                 file=file, line=at, field=here)
            if not name.strip():
                raise InputError("an empty name; remove the line", file=file, line=at, field=here)
            entries.append((roster_mod.clean(name, file=file, line=at, field=here), at,
                            roster_mod.clean_group(group or "", file=file, line=at, field=f"{here}.group")))
        roster = roster_mod.from_entries(entries, file=file, field_of=lambda i: f"{where}[{i}]")
    if inv.model.mode == "hub":  # no fixed seats: Swarm places each student's server where there is room
        return roster
    if len(roster.names) > inv.seat_count:
        per_host = sum(s.seats for s in inv.services)
        raise InputError(
            f"{len(roster.names)} students but only {inv.seat_count} seats ({inv.server_count} host"
            f"{'s' * (inv.server_count != 1)} x {per_host} seat{'s' * (per_host != 1)} each); add seats or hosts",
            file=file, line=line, field="roster")
    return roster
