"""The roster: reading it (CSV or YAML list, errors with file and line) and placing students on seats."""
from pathlib import Path

import pytest

from fleet import inventory, roster
from fleet.errors import InputError
from fleet.roster import SeatKey

# --- reading a CSV -------------------------------------------------------------


def names(raw: bytes) -> tuple[str, ...]:
    return roster.parse_csv(raw, "students.csv").names


@pytest.mark.parametrize("raw,expected", [
    (b"Ana\nBen\n", ("Ana", "Ben")),  # one name a line, no header
    (b"name\nAna\nBen\n", ("Ana", "Ben")),  # header
    (b"id,Name,email\n1,Ana L\xc3\xb3pez,a@x\n2,Ben,b@x\n", ("Ana López", "Ben")),  # the column called name
    (b"\xef\xbb\xbfname;email\r\nAna;a@x\r\n\r\nBen;b@x\r\n", ("Ana", "Ben")),  # BOM, semicolons, CRLF, blank line
    (b"Name\tEmail\nAna\ta@x\n", ("Ana",)),  # tabs
    (b'"L\xc3\xb3pez, Ana",1\n"Smith, Ben",2\n', ("López, Ana", "Smith, Ben")),  # no header: the first column
    (b'"L\xc3\xb3pez, Ana";1\n', ("López, Ana",)),  # a comma inside quotes does not make it the delimiter
    (b"  Zo\xc3\xab    \xc3\x85ngstr\xc3\xb6m  \n", ("Zoë Ångström",)),  # spaces tidied
    (b"Zoe\xcc\x88\n", ("Zo\u00eb",)),  # decomposed accents stored composed (NFC)
])
def test_csv_rosters(raw, expected):
    assert names(raw) == expected


@pytest.mark.parametrize("raw,line,words", [
    (b"name\nAna\nben\nBEN \n", 4, "'BEN' is listed twice (also line 3)"),
    (b"name,email\nAna,a@x\n,b@x\n", 3, "no name in column 1"),
    (b"Ana\n=HYPERLINK(\"x\")\n", 2, "formula"),
    (b"Ana\nBen\n\xe9\n", 3, "not UTF-8"),
    (b"Ana\nB\x07en\n", 2, "control characters"),
    (b"Ana\n" + b"x" * 101 + b"\n", 2, "too long"),
])
def test_csv_errors_name_the_line(raw, line, words):
    with pytest.raises(InputError) as e:
        names(raw)
    assert (e.value.file, e.value.line) == ("students.csv", line), str(e.value)
    assert words in str(e.value)


@pytest.mark.parametrize("raw", [b"", b"name\n", b"\n\n"])
def test_empty_roster_is_refused(raw):
    with pytest.raises(InputError, match="lists no students"):
        names(raw)


# --- in the inventory ------------------------------------------------------------

INVENTORY = """\
name: stats101
hosts: [192.0.2.10, 192.0.2.11]
services:
  - {name: nb, image: "local/jupyter:1", publish: 8000, seats: 2}
"""


@pytest.fixture
def load(tmp_path: Path):
    def _load(extra: str) -> inventory.Inventory:
        p = tmp_path / "lab.yml"
        p.write_text(INVENTORY + extra)
        return inventory.load(p)
    return _load


def test_csv_beside_the_inventory(load, tmp_path):
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / "students.csv").write_text("name\nAna\nBen\n")
    inv = load("roster: class/students.csv\n")
    assert inv.roster.names == ("Ana", "Ben")
    assert inv.roster.source == str(tmp_path / "class" / "students.csv")


def test_yaml_list_takes_names_as_written(load):
    assert load("roster:\n  - Ana\n  - No\n  - 1e3\n").roster.names == ("Ana", "No", "1e3")


def test_no_roster(load):
    assert load("").roster is None


@pytest.mark.parametrize("extra,line,field,words", [
    ("roster: missing.csv\n", 5, "roster", "does not exist"),
    ("roster: 3\n", 5, "roster", "a CSV file (roster: students.csv) or a list of names"),
    ("roster: ''\n", 5, "roster", "name the CSV file"),
    ("roster:\n  - Ana\n  - {nme: Ben}\n", 7, "roster[1]", "has `name:` and optionally `group:`, not nme"),
    ("roster:\n  - Ana\n  - [Ben]\n", 7, "roster[1]", "one name"),
    ("roster:\n  - Ana\n  - {name: Ben, group: [a]}\n", 7, "roster[1].group", "a group is text"),
    ("roster:\n  - Ana\n  -\n", 7, "roster[1]", "empty name"),
    ("roster:\n  - Ana\n  - ana\n", 7, "roster[1]", "listed twice (also line 6)"),
    ("roster: []\n", None, "", "lists no students"),
    ("roster: [a, b, c, d, e]\n", 5, "roster", "5 students but only 4 seats (2 hosts x 2 seats each)"),
])
def test_inventory_roster_errors(load, tmp_path, extra, line, field, words):
    with pytest.raises(InputError) as e:
        load(extra)
    assert (e.value.file, e.value.line, e.value.field) == (str(tmp_path / "lab.yml"), line, field), str(e.value)
    assert words in str(e.value)


def test_csv_error_names_the_csv_file(load, tmp_path):
    (tmp_path / "s.csv").write_bytes(b"Ana\nAna\n")
    with pytest.raises(InputError) as e:
        load("roster: s.csv\n")
    assert str(e.value).startswith(f"{tmp_path / 's.csv'}:2: ")


# --- placing students ---------------------------------------------------------------

SEATS = [SeatKey(h, f"c-nb-{n}") for h in ("h1", "h2") for n in (1, 2)]


def place(names_: list[str], previous=None, **kw) -> roster.Assignment:
    return roster.assign(names_, SEATS, roster.previous_from(previous or {}), **kw)


def seats_of(a: roster.Assignment) -> dict[str, SeatKey]:
    return {name: seat for seat, name in a.seats.items()}


def test_fresh_class_fills_seats_in_order():
    a = place(["Ana", "Ben", "Cleo"])
    assert seats_of(a) == {"Ana": SEATS[0], "Ben": SEATS[1], "Cleo": SEATS[2]}
    assert a.new == ["Ana", "Ben", "Cleo"] and not a.held


def test_reordered_and_grown_roster_keeps_every_seat():
    first = place(["Ana", "Ben", "Cleo"])
    again = place(["Dan", "cleo", "Ben", "ANA"], first.record())
    assert seats_of(again) == {"ANA": SEATS[0], "Ben": SEATS[1], "cleo": SEATS[2], "Dan": SEATS[3]}
    assert again.new == ["Dan"]
    assert again.record()["ana"]["name"] == "ANA"  # the roster's current spelling is what the cards show


def test_removed_student_seat_is_held_not_handed_on():
    first = place(["Ana", "Ben", "Cleo"])
    later = place(["Ana", "Cleo", "Dan"], first.record())
    assert later.held == {SEATS[1]: "Ben"}
    assert seats_of(later) == {"Ana": SEATS[0], "Cleo": SEATS[2], "Dan": SEATS[3]}
    back = place(["Ana", "Cleo", "Dan", "Ben"], later.record())  # the name comes back: so does the seat
    assert seats_of(back)["Ben"] == SEATS[1] and not back.held and back.new == []


def test_shortage_because_of_held_seats_names_counts_and_people():
    first = place(["Ana", "Ben", "Cleo", "Dan"])
    with pytest.raises(roster.SeatShortage) as e:
        place(["Ana", "Cleo", "Dan", "Eve"], first.record())
    text = str(e.value)
    assert "1 new student (Eve) needs a seat but 0 are free" in text
    assert "1 is held for students no longer on the roster: Ben (h1 c-nb-2)" in text
    assert "--release-seats" in text


def test_release_hands_held_seats_to_new_students():
    first = place(["Ana", "Ben", "Cleo", "Dan"])
    released = place(["Ana", "Cleo", "Dan", "Eve"], first.record(), release=True)
    assert released.released == [SEATS[1]] and not released.held
    assert seats_of(released)["Eve"] == SEATS[1]
    assert "ben" not in released.record()


def test_seat_gone_from_inventory_makes_the_student_new():
    previous = {"ana": {"name": "Ana", "host": "h9", "container": "c-nb-1"},
                "old": {"name": "Old", "host": "h9", "container": "c-nb-2"}}
    a = place(["Ben", "Ana"], previous)
    assert seats_of(a) == {"Ben": SEATS[0], "Ana": SEATS[1]} and a.new == ["Ben", "Ana"]
    assert not a.held  # a held seat that no longer exists holds nothing


def test_two_names_on_one_seat_in_a_damaged_state_do_not_share_it():
    previous = {"ana": {"name": "Ana", "host": "h1", "container": "c-nb-1"},
                "ben": {"name": "Ben", "host": "h1", "container": "c-nb-1"}}
    a = place(["Ana", "Ben"], previous)
    assert seats_of(a) == {"Ana": SEATS[0], "Ben": SEATS[1]}


def test_students_wait_for_seats_still_to_be_created():
    a = roster.assign(["Ana", "Ben", "Cleo"], SEATS[:2], {}, pending=2)
    assert seats_of(a) == {"Ana": SEATS[0], "Ben": SEATS[1]} and a.waiting == ["Cleo"]
    later = roster.assign(["Ana", "Ben", "Cleo"], SEATS, roster.previous_from(a.record()))
    assert seats_of(later)["Cleo"] == SEATS[2] and later.new == ["Cleo"] and not later.waiting
    with pytest.raises(roster.SeatShortage, match="need a seat but 3 are free"):
        roster.assign(["Ana", "Ben", "Cleo", "Dan"], SEATS[:2], {}, pending=1)


# --- groups ----------------------------------------------------------------------------


def test_csv_group_column_any_case_blank_for_none():
    r = roster.parse_csv(b"Name;GROUP;email\nAda Lovelace;Instructor;a@x\nGrace;;g@x\nAlan; tas ;t@x\n", "s.csv")
    assert r.names == ("Ada Lovelace", "Grace", "Alan")
    assert (r.group_of("ada  lovelace"), r.group_of("Grace"), r.group_of("Alan"), r.group_of("Nobody")) == \
        ("Instructor", None, "tas", None)


def test_without_a_header_there_is_no_group_column():
    r = roster.parse_csv(b"Ada,instructor\nGrace,student\n", "s.csv")
    assert r.names == ("Ada", "Grace") and r.groups == ()


def test_csv_group_errors_name_the_line():
    with pytest.raises(InputError) as e:
        roster.parse_csv(b"name,group\nAda,ok\nGrace," + b"x" * 41 + b"\n", "s.csv")
    assert (e.value.line, "too long") == (3, "too long") and "too long" in str(e.value)


def test_yaml_entries_with_groups(load):
    inv = load("roster:\n  - {name: Ada Lovelace, group: instructor}\n  - Grace\n  - {name: No, group: 1e3}\n")
    assert inv.roster.names == ("Ada Lovelace", "Grace", "No")
    assert inv.roster.group_of("Ada Lovelace") == "instructor" and inv.roster.group_of("No") == "1e3"


def test_groups_on_a_host_come_from_the_placement():
    r = roster.Roster(("Ada", "Grace", "Alan"), "s", (("ada", "instructor"), ("alan", "ta")))
    record = {"ada": {"name": "Ada", "host": "h1", "container": "c-nb-1"},
              "grace": {"name": "Grace", "host": "h1", "container": "c-nb-2"},
              "alan": {"name": "Alan", "host": "h2", "container": "c-nb-1"}}
    assert roster.groups_on(record, r, "h1") == {"c-nb-1": "instructor"}
    assert roster.groups_on(record, r, "h2") == {"c-nb-1": "ta"}
    assert roster.groups_on(record, None, "h1") == {}


# --- spares and moved students ---------------------------------------------------------

SPARES = [SeatKey(h, "c-nb-3") for h in ("h1", "h2")]


def test_spares_are_never_given_to_new_students():
    a = roster.assign(["Ana", "Ben", "Cleo", "Dan"], SEATS, {}, spares=SPARES)
    assert set(a.seats) == set(SEATS)
    with pytest.raises(roster.SeatShortage, match="1 new student .Eve. needs a seat but 0 are free"):
        roster.assign(["Ana", "Ben", "Cleo", "Dan", "Eve"], SEATS, roster.previous_from(a.record()), spares=SPARES)


def test_a_moved_student_keeps_the_spare_and_their_old_seat_is_held():
    first = roster.assign(["Ana", "Ben", "Cleo"], SEATS, {}, spares=SPARES)
    record = first.record()
    record["ana"] = {"name": "Ana", "host": "h2", "container": "c-nb-3"}  # fab move: Ana to h2's spare
    vacated = {SEATS[0]: "Ana"}
    later = roster.assign(["Ana", "Ben", "Cleo", "Dan"], SEATS, roster.previous_from(record), spares=SPARES,
                          vacated=vacated)
    assert seats_of(later) == {"Ana": SPARES[1], "Ben": SEATS[1], "Cleo": SEATS[2], "Dan": SEATS[3]}
    assert later.vacated == {SEATS[0]: "Ana"} and later.vacated_record() == [
        {"name": "Ana", "host": "h1", "container": "c-nb-1"}]
    with pytest.raises(roster.SeatShortage) as e:  # the old seat still runs with Ana's password and files
        roster.assign(["Ana", "Ben", "Cleo", "Dan", "Eve"], SEATS, roster.previous_from(later.record()),
                      spares=SPARES, vacated=vacated)
    assert "Ana (h1 c-nb-1)" in str(e.value)
    freed = roster.assign(["Ana", "Ben", "Cleo", "Dan", "Eve"], SEATS, roster.previous_from(later.record()),
                          spares=SPARES, vacated=vacated, release=True)
    assert freed.released == [SEATS[0]] and seats_of(freed)["Eve"] == SEATS[0] and not freed.vacated
    assert seats_of(freed)["Ana"] == SPARES[1]


def test_a_student_leaving_the_roster_from_a_spare_holds_it():
    record = {"ana": {"name": "Ana", "host": "h2", "container": "c-nb-3"}}
    a = roster.assign(["Ben"], SEATS, roster.previous_from(record), spares=SPARES)
    assert a.held == {SPARES[1]: "Ana"} and seats_of(a) == {"Ben": SEATS[0]}
