"""An exam day: roster groups with their own limits, and spare seats held for moving a student."""
from __future__ import annotations

from pathlib import Path

import pytest

from fleet import desired, inventory, placement, roster
from fleet.seats import expand
from fleet.state import State
from tests.unit.conftest import load_error

BASE = """\
name: lab
hosts: [192.0.2.10, 192.0.2.11]
services:
  - name: nb
    seats: 2
    spares: 1
    memory: 1g
    groups: {Instructor: {memory: 4g, cpus: 2}, ta: {cpus: none}}
"""


def test_groups_and_spares_in_the_inventory(write):
    inv = inventory.load(write(BASE))
    (svc,) = inv.services
    assert svc.spares == 1 and svc.seat_ports == 3 and list(svc.host_ports) == [8000, 8001, 8002]
    assert inv.seat_count == 4  # students fit on the seats; spares are for moves
    assert svc.for_group("instructor").memory == "4g" and svc.for_group("INSTRUCTOR").cpus == 2
    assert svc.for_group("ta").cpus is None and svc.for_group("ta").memory == "1g"
    assert svc.for_group("student") is svc and svc.for_group(None) is svc


def test_the_next_services_ports_start_after_the_spares(write):
    inv = inventory.load(write(BASE + "  - {name: r, kind: rstudio}\n"))
    assert list(inv.services[1].host_ports) == [8003]


@pytest.mark.parametrize("extra,line,field,words", [
    ("    spares: -1\n", 7, "services[0].spares", "greater than or equal to 0"),
    ("    groups: {'a/b': {memory: 1g}}\n", 7, "services[0].groups", "not a group name"),
    ("    groups: {x: {memory: 2}}\n", 7, "services[0].groups.x.memory", "must be text"),
    ("    groups: {x: {memory: 1m}}\n", 7, "services[0].groups.x.memory", "below Docker's minimum"),
    ("    groups: {x: {cpuset: '0'}}\n", 7, "services[0].groups.x.cpuset", "unknown field"),
    ("    groups: {x: {}, X: {}}\n", 7, "services[0].groups", "given twice"),
])
def test_group_and_spare_errors_name_line_and_field(write, extra, line, field, words):
    text = BASE.replace("    spares: 1\n", "").replace(
        "    groups: {Instructor: {memory: 4g, cpus: 2}, ta: {cpus: none}}\n", "") + extra
    e = load_error(write, text)
    assert (e.line, e.field) == (line, field), str(e)
    assert words in str(e)


def test_a_spare_port_past_65535_is_refused(write):
    e = load_error(write, "name: lab\nhosts: [192.0.2.10]\nservices:\n  - {name: nb, publish: 65535, spares: 1}\n")
    assert "publish 65535 + 2 seats runs past port 65535" in str(e)


def test_a_students_group_gives_the_seat_they_sit_on_its_limits(write):
    inv = inventory.load(write(BASE))
    host = inv.hosts[0]
    secrets = {s.container: "s" * 32 for s in expand(inv)}
    plain = {w.name: w for w in desired.for_host(inv, host, secrets)}
    grouped = {w.name: w for w in desired.for_host(inv, host, secrets, groups={"lab-nb-2": "instructor",
                                                                                "lab-nb-3": "ta"})}
    assert grouped["lab-nb-1"].spec == plain["lab-nb-1"].spec
    run = grouped["lab-nb-2"].run
    assert run[run.index("--memory") + 1] == str(4 * 1024**3) and run[run.index("--cpus") + 1] == "2"
    assert grouped["lab-nb-2"].spec != plain["lab-nb-2"].spec  # replaced: docker update would not last
    assert "--cpus" not in grouped["lab-nb-3"].run and "--memory" in grouped["lab-nb-3"].run
    assert grouped["lab-nb-2"].seat.service.memory == "4g" and grouped["lab-nb-2"].name == "lab-nb-2"


def test_spares_come_after_every_other_seat_and_get_cards_only_when_someone_moved_there(write, tmp_path: Path):
    inv = inventory.load(write(BASE + "roster: [Ada, Grace, Alan]\n"))
    state = State.load(tmp_path / ".fleet" / "lab.json", "lab")
    order = [(h.address, s.container, s.spare) for h, s in placement.seats_in_order(inv, state)]
    assert order == [("192.0.2.10", "lab-nb-1", False), ("192.0.2.10", "lab-nb-2", False),
                     ("192.0.2.11", "lab-nb-1", False), ("192.0.2.11", "lab-nb-2", False),
                     ("192.0.2.10", "lab-nb-3", True), ("192.0.2.11", "lab-nb-3", True)]
    for host, seat in placement.seats_in_order(inv, state):
        state.secret(host.id, seat.container, lambda: "t" * 32)
    placed = placement.assign_students(inv, state)
    assert placed.new == ["Ada", "Grace", "Alan"] and all(not s.container.endswith("-3") for s in placed.seats)
    cards = placement.cards(inv, state, placed.seats)
    assert [c.container for c in cards] == ["lab-nb-1", "lab-nb-2", "lab-nb-1", "lab-nb-2"]  # no spare
    state.data["roster"]["ada"] = {"name": "Ada", "host": "192.0.2.11", "container": "lab-nb-3"}  # as fab move does
    state.data["vacated"] = [{"name": "Ada", "host": "192.0.2.10", "container": "lab-nb-1"}]
    placed = placement.assign_students(inv, state)
    cards = {(c.host, c.container): c.student for c in placement.cards(inv, state, placed.seats)}
    assert cards[("192.0.2.11", "lab-nb-3")] == "Ada" and ("192.0.2.10", "lab-nb-3") not in cards
    assert cards[("192.0.2.10", "lab-nb-1")] is None  # held, nobody's now
    assert placed.vacated == {roster.SeatKey("192.0.2.10", "lab-nb-1"): "Ada"}
    assert state.data["vacated"] == [{"name": "Ada", "host": "192.0.2.10", "container": "lab-nb-1"}]
