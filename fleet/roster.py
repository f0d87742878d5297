"""The roster: which student sits at which seat, kept stable across runs.

Pure: names in, names out. Reading a roster (a CSV file or the inventory's
YAML list) gives names with the line each came from, so an error can point
at it; `assign` places students on seats given the previous assignment from
the state, without touching a file or a host.

The policy a teacher can rely on:

* Students are placed in roster order on the seats in seat order (host by
  host, service by service, seat by seat), so a fresh class fills the first
  hosts first.
* A student keeps their seat on every later run, whatever happens to the
  order of the roster or to the other names. Names are matched ignoring case,
  accents' encoding (NFC) and runs of spaces, so a re-export of the same list
  still matches.
* A student who leaves the roster keeps their seat *held*: nobody else is put
  on it, because that seat still runs with the old student's password and
  files. If the name comes back, so does the seat. Held seats are handed on
  only when the teacher says so (``release=True``, i.e. ``fab provision
  --release-seats``), which also gives the seat a new password, so the new
  student starts from a fresh container and the old password stops working.
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleet.errors import InputError

MAX_FILE_BYTES = 1_000_000
MAX_NAME = 100
HEADER = "name"  # a first row with a cell called this (any case) is the header, and that column holds the names
GROUP = "group"  # in such a header, the column of each student's group (e.g. instructor), if there is one
MAX_GROUP = 40
FORMULA_START = ("=", "+", "-", "@")  # a cell starting so is run as a formula by spreadsheets opening the handout CSV


@dataclass(frozen=True)
class Roster:
    """The students of a class, in the teacher's order, and where the list was written."""

    names: tuple[str, ...]
    source: str  # the CSV file, or the inventory for a YAML list: named in errors about the roster
    groups: tuple[tuple[str, str], ...] = ()  # (name key, group as written) of the students that have one

    def group_of(self, name: str) -> str | None:
        """The student's group (as written in the roster), None when they have none or are not on it."""
        k = key(name)
        return next((g for n, g in self.groups if n == k), None)


@dataclass(frozen=True, order=True)
class SeatKey:
    """One seat of the fleet: a container on a host, as the state names them."""

    host: str
    container: str


def key(name: str) -> str:
    """The identity of a name: what two spellings of the same student share."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def clean(name: str, *, file: str, line: int | None, field: str = "") -> str:
    """The name as printed on a card: NFC, single spaces; refuse what cannot be a name."""
    text = " ".join(unicodedata.normalize("NFC", name).split())
    if any(unicodedata.category(c) == "Cc" for c in name.strip()):
        raise InputError("a name cannot hold control characters", file=file, line=line, field=field)
    if len(text) > MAX_NAME:
        raise InputError(f"a name of {len(text)} characters is too long for a card (at most {MAX_NAME})",
                         file=file, line=line, field=field)
    if text.startswith(FORMULA_START):
        raise InputError(f"{text!r} starts with {text[0]!r}, which a spreadsheet opening the handout would run "
                         "as a formula; remove it", file=file, line=line, field=field)
    return text


def clean_group(group: str, *, file: str, line: int | None, field: str = "") -> str | None:
    """A student's group as the roster gives it: None when blank; refuse what cannot be one."""
    text = " ".join(group.split())
    if not text:
        return None
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in group):
        raise InputError("a group cannot hold control characters", file=file, line=line, field=field)
    if len(text) > MAX_GROUP:
        raise InputError(f"a group name of {len(text)} characters is too long (at most {MAX_GROUP})",
                         file=file, line=line, field=field)
    return text


def from_entries(entries: Sequence[tuple[str, int | None] | tuple[str, int | None, str | None]], *, file: str,
                 field_of: Callable[[int], str] | None = None) -> Roster:
    """Names with their lines (and groups) → a Roster; refuses an empty list and a name given twice.

    Two students with the same name must be told apart by the teacher
    (``Alex Smith (B)``): the name is how a student finds their seat again.
    """
    field_of = field_of or (lambda _: "")
    if not entries:
        raise InputError("the roster lists no students; leave out `roster:` for cards without names", file=file)
    seen: dict[str, int | None] = {}
    names, groups = [], []
    for i, (name, line, *group) in enumerate(entries):
        k = key(name)
        if k in seen:
            where = f"line {seen[k]}" if seen[k] is not None else "above"
            raise InputError(f"{name!r} is listed twice (also {where}); tell the two apart, e.g. {name + ' (B)'!r}",
                             file=file, line=line, field=field_of(i))
        seen[k] = line
        names.append(name)
        if group and group[0]:
            groups.append((k, group[0]))
    return Roster(tuple(names), file, tuple(groups))


def parse_csv(raw: bytes, file: str) -> Roster:
    """A CSV roster: the column headed ``name``, or else the first column of every row.

    The first row is a header only if one of its cells is ``name`` (any case);
    otherwise it is a student like the rest, so a plain list of names, one a
    line, is a valid roster. A header may also have a ``group`` column (any
    case): each student's group (e.g. instructor), blank for none. Delimiter , ; or tab (what spreadsheets export),
    UTF-8 with or without a byte-order mark; blank rows are skipped.
    """
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(f"the roster is larger than {MAX_FILE_BYTES // 1000} kB", file=file)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError("the roster is not UTF-8 text; save it as \"CSV UTF-8\"", file=file,
                         line=raw[: e.start].count(b"\n") + 1) from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter(text))
    column: int | None = None
    group_column: int | None = None
    entries: list[tuple[str, int, str | None]] = []
    try:
        line = 1
        for row in reader:
            start, line = line, reader.line_num + 1  # a quoted cell may span lines: a row starts after the last one
            if not any(cell.strip() for cell in row):
                continue
            if column is None:
                heads = [cell.strip().casefold() for cell in row]
                column = heads.index(HEADER) if HEADER in heads else 0
                if HEADER in heads:
                    group_column = heads.index(GROUP) if GROUP in heads else None
                    continue
            cell = row[column].strip() if column < len(row) else ""
            if not cell:
                raise InputError(f"no name in column {column + 1}", file=file, line=start)
            group = row[group_column] if group_column is not None and group_column < len(row) else ""
            entries.append((clean(cell, file=file, line=start), start, clean_group(group, file=file, line=start)))
    except csv.Error as e:
        raise InputError(f"not valid CSV: {e}", file=file, line=reader.line_num) from None
    return from_entries(entries, file=file)


def delimiter(text: str) -> str:
    """The delimiter: whichever of , ; and tab the first non-blank line has most of, outside quotes.

    Spreadsheets export ; where the comma is the decimal mark. A line with
    none of them (one name a line) reads the same with any.
    """
    first = next((line for line in text.splitlines() if line.strip()), "")
    bare = re.sub(r'"[^"]*"', "", first)
    return max(",;\t", key=bare.count)  # ties go to the comma, the first


def read_csv(path: Path, file: str, line: int | None) -> Roster:
    """Read the roster file named in the inventory (errors about a missing file point at the inventory)."""
    try:
        raw = path.read_bytes()[: MAX_FILE_BYTES + 1]
    except FileNotFoundError:
        raise InputError(f"roster file {str(path)!r} does not exist", file=file, line=line, field="roster") from None
    except OSError as e:
        raise InputError(f"cannot read the roster {str(path)!r}: {e.strerror}", file=file, line=line,
                         field="roster") from None
    return parse_csv(raw, str(path))


# --- assignment -------------------------------------------------------------


@dataclass
class Assignment:
    """The outcome of placing a roster on the seats."""

    seats: dict[SeatKey, str] = field(default_factory=dict)  # seat → student on the current roster
    held: dict[SeatKey, str] = field(default_factory=dict)  # seat → former student, kept off limits
    new: list[str] = field(default_factory=list)  # students placed on a seat this time
    released: list[SeatKey] = field(default_factory=list)  # held seats handed on: they need a new password
    waiting: list[str] = field(default_factory=list)  # students for seats that do not exist yet (droplets to create)
    vacated: dict[SeatKey, str] = field(default_factory=dict)  # seat → the student moved off it (fab move): held

    def vacated_record(self) -> list[dict[str, str]]:
        """The seats students were moved off, as the state keeps them."""
        return [{"name": name, "host": s.host, "container": s.container} for s, name in sorted(self.vacated.items())]

    def record(self) -> dict[str, dict[str, str]]:
        """The assignment as the state keeps it: by name key, current and held students alike."""
        both = {**self.held, **self.seats}
        return {key(name): {"name": name, "host": s.host, "container": s.container} for s, name in sorted(both.items())}


class SeatShortage(Exception):
    """More new students than free seats, because seats are held for students who left."""

    def __init__(self, waiting: list[str], free: int, held: dict[SeatKey, str]):
        self.waiting, self.free, self.held = waiting, free, held
        text = (f"{len(waiting)} new student{'s' * (len(waiting) != 1)} ({', '.join(waiting)}) "
                f"need{'s' * (len(waiting) == 1)} a seat but {free} {'is' if free == 1 else 'are'} free")
        if held:
            who = ", ".join(f"{name} ({s.host} {s.container})" for s, name in sorted(held.items()))
            text += (f": {len(held)} {'is' if len(held) == 1 else 'are'} held for students no longer on the roster: "
                     f"{who}. Add seats, put those names back, or run `fab provision --release-seats` to give the "
                     "held seats new passwords and fresh containers (their files are deleted) and hand them on")
        super().__init__(text)


def groups_on(record: Mapping[str, Mapping[str, str]], roster: Roster | None, host: str) -> dict[str, str]:
    """Container → the group of the roster's student placed there, for one host (the state's record, see
    Assignment.record); students without a group, or no longer on the roster, are left out."""
    if roster is None or not roster.groups:
        return {}
    out = {}
    for v in record.values():
        group = roster.group_of(v["name"]) if v.get("host") == host else None
        if group:
            out[v["container"]] = group
    return out


def previous_from(record: Mapping[str, Mapping[str, str]]) -> dict[str, tuple[str, SeatKey]]:
    """The state's record (see Assignment.record) → name key: (name, seat)."""
    return {k: (v["name"], SeatKey(v["host"], v["container"])) for k, v in record.items()}


def vacated_from(record: Sequence[Mapping[str, str]]) -> dict[SeatKey, str]:
    """The state's list of seats students were moved off (Assignment.vacated_record) → seat: name."""
    return {SeatKey(v["host"], v["container"]): v["name"] for v in record}


def assign(names: Sequence[str], seats: Sequence[SeatKey], previous: Mapping[str, tuple[str, SeatKey]],
           *, release: bool = False, pending: int = 0, spares: Sequence[SeatKey] = (),
           vacated: Mapping[SeatKey, str] | None = None) -> Assignment:
    """Place every student on a seat: the previous one if it still exists, else the first free one.

    Seats of students no longer listed are held (or, with ``release``, freed
    and listed in ``released``). A previous seat that no longer exists (a
    host or seat removed from the inventory) is forgotten: that student
    counts as new. ``pending`` seats are still to come (servers not created
    yet): students who fit only there are left ``waiting`` for a later run.
    ``spares`` exist but are never given to a new student: only a move
    (fab move) puts one there, and then they keep it like any seat. Seats in
    ``vacated`` were left by a student moved to a spare; they still run with
    that student's password and files, so they are held like a leaver's
    seat (``release`` frees them too).
    Raises SeatShortage when the new students do not fit.
    """
    exists = set(seats) | set(spares)
    current = {key(n) for n in names}
    out = Assignment()
    for k, (name, seat) in previous.items():
        if k not in current and seat in exists and seat not in out.held:
            out.held[seat] = name
    out.vacated = {seat: name for seat, name in (vacated or {}).items() if seat in exists and seat not in out.held
                   and seat not in {s for _, s in previous.values()}}
    if release:
        out.released = sorted(set(out.held) | set(out.vacated))
        out.held, out.vacated = {}, {}
    taken = set(out.held) | set(out.vacated)
    waiting = []
    for name in names:
        prev = previous.get(key(name))
        if prev and prev[1] in exists and prev[1] not in taken and prev[1] not in out.released:
            out.seats[prev[1]] = name
            taken.add(prev[1])
        else:
            waiting.append(name)
    free = [s for s in seats if s not in taken]
    if len(waiting) > len(free) + pending:
        raise SeatShortage(waiting, len(free) + pending, {**out.vacated, **out.held})
    for name, seat in zip(waiting, free, strict=False):
        out.seats[seat] = name
        out.new.append(name)
    out.waiting = waiting[len(free):]
    return out
