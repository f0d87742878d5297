"""The handout in every format: one card per seat, names escaped, QR codes of the login links."""
from __future__ import annotations

import csv
import io
import json
import re
import stat
from html.parser import HTMLParser
from pathlib import Path

import pytest
import segno

from fleet import handout, inventory, placement
from fleet.errors import InputError
from fleet.seats import expand
from fleet.state import State

NASTY = '<script>alert("x")</script> & O\'Brien'
INVENTORY = """\
name: stats101
hosts: [192.0.2.10, "2001:db8::1"]
services:
  - {name: nb, image: "local/jupyter:1", publish: 8000, seats: 2}
  - {name: r, kind: rstudio, image: rocker/rstudio:4.4.1, publish: 8700}
"""


@pytest.fixture
def fleet(tmp_path: Path):
    """An inventory of 2 hosts x 3 seats with a roster, and a state where one seat has no credentials yet."""
    def make(extra: str = "roster:\n  - Ana López\n  - '" + NASTY.replace("'", "''") + "'\n"):
        p = tmp_path / "lab.yml"
        p.write_text(INVENTORY + extra)
        inv = inventory.load(p)
        state = State.load(tmp_path / ".fleet" / "stats101.json", "stats101")
        for i, (host, seat) in enumerate(placement.seats_in_order(inv)):
            if i != 4:
                state.data["secrets"].setdefault(host.id, {})[seat.container] = f"{i:02d}" + "ab" * 15
        return inv, state
    return make


def make_cards(inv, state):
    placed = placement.assign_students(inv, state)
    return placement.cards(inv, state, placed.seats if placed else None)


class Page(HTMLParser):
    """The parts of the page a student uses: per card its name, link, secret and QR drawing."""

    def __init__(self):
        super().__init__()
        self.cards: list[dict] = []
        self.sheets = 0
        self.tags: list[str] = []
        self._in = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        cls = a.get("class") or ""
        if tag == "section" and "sheet" in cls:
            self.sheets += 1
        elif tag == "article":
            self.cards.append({"host": a["data-host"], "container": a["data-container"], "student": None,
                               "secret": "", "paths": []})
        elif tag == "a" and "login-link" in cls:
            self.cards[-1]["href"] = a["href"]
        elif tag == "path" and "stroke" in a:  # the dark modules; the light background is a filled square
            self.cards[-1]["paths"].append(a["d"])
        elif tag == "svg":
            self.cards[-1]["viewbox"] = a["viewbox"]
        self._in = "student" if "student" in cls and "blank" not in cls else "secret" if "secret" in cls else self._in

    def handle_endtag(self, tag):
        if tag in ("h2", "dd"):
            self._in = ""

    def handle_data(self, data):
        if self._in == "student":
            self.cards[-1]["student"] = (self.cards[-1]["student"] or "") + data
        elif self._in == "secret":
            self.cards[-1]["secret"] += data


def modules(viewbox: str, paths: list[str], border: int = 4) -> list[list[bool]]:
    """Read the dark modules back out of segno's SVG path (runs drawn with h, moves with M/m) as a matrix."""
    size = int(viewbox.split()[2])
    grid = [[False] * size for _ in range(size)]
    for d in paths:
        x = y = 0.0
        for cmd, args in re.findall(r"([MmHhVv])([^MmHhVv]*)", d):
            nums = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", args)]
            if cmd == "M":
                x, y = nums
            elif cmd == "m":
                x, y = x + nums[0], y + nums[1]
            elif cmd == "h":
                for col in range(int(x), int(x + nums[0])):
                    grid[int(y)][col] = True
                x += nums[0]
            else:
                raise AssertionError(f"unexpected path command {cmd}")
    return [row[border:size - border] for row in grid[border:size - border]]


def test_one_card_per_seat_with_credentials(fleet):
    inv, state = fleet()
    cards = make_cards(inv, state)
    page = Page()
    page.feed(handout.render(cards, "html", title="Stats 101"))
    seats = [(h.id, s.container) for h, s in placement.seats_in_order(inv)]
    assert [(c["host"], c["container"]) for c in page.cards] == seats[:4] + seats[5:]  # seat 5 has no secret yet
    assert [c["student"] for c in page.cards] == ["Ana López", NASTY, None, None, None]
    for card, c in zip(page.cards, cards, strict=True):
        assert card["href"] == c.login_url and card["secret"] == c.secret
    assert page.sheets == 1 and "script" not in page.tags


def test_names_and_everything_else_are_escaped(fleet):
    inv, state = fleet()
    text = handout.render(make_cards(inv, state), "html", title="<i>Stats</i>", certificate_note="a < b")
    assert NASTY not in text and "<script" not in text and "<i>" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; O&#x27;Brien" in text
    assert "&lt;i&gt;Stats&lt;/i&gt;" in text


def test_qr_code_is_the_login_link(fleet):
    inv, state = fleet()
    cards = make_cards(inv, state)
    page = Page()
    page.feed(handout.render(cards, "html", title="t"))
    for card, c in zip(page.cards, cards, strict=True):
        expected = segno.make_qr(c.login_url, error="m")
        assert not expected.is_micro  # phones read full QR codes
        assert modules(card["viewbox"], card["paths"]) == [[bool(m) for m in row] for row in expected.matrix]
    jupyter = next(c for c in cards if c.kind == "jupyter")
    assert jupyter.login_url.endswith(f"/?token={jupyter.secret}")


def test_page_is_self_contained_a4_and_private_by_design(fleet):
    inv, state = fleet()
    text = handout.render(make_cards(inv, state), "html", title="t")
    assert "@page { size: A4" in text and "page-break-inside: avoid" in text
    for external in ("<script", "<link", "<img", "@import", "url(", "src="):
        assert external not in text
    assert '<meta name="referrer" content="no-referrer">' in text


def test_eight_cards_a_sheet(tmp_path):
    p = tmp_path / "lab.yml"
    p.write_text("name: big\nhosts: [192.0.2.10]\nservices:\n  - {name: nb, image: i, publish: 8000, seats: 17}\n")
    inv = inventory.load(p)
    state = State.load(tmp_path / "s.json", "big")
    for host in inv.hosts:
        for seat in expand(inv):
            state.secret(host.id, seat.container, lambda: "ab" * 16)
    page = Page()
    page.feed(handout.render(placement.cards(inv, state), "html", title="t"))
    assert (len(page.cards), page.sheets) == (17, 3)


def card(url: str) -> handout.Card:
    return handout.Card(student=None, host="h", service="nb", kind="jupyter", seat=1, url=url, user="",
                        secret="s", login_url=url + "?token=s", container="c")


@pytest.mark.parametrize("url,configured,expected", [
    ("https://192.0.2.10:8000/", None, handout.SELF_SIGNED_NOTE),
    ("https://192.0.2.10:8000/", "Trusted: nothing to do.", "Trusted: nothing to do."),
    ("https://192.0.2.10:8000/", "", None),
    ("http://192.0.2.10:8000/", None, None),
    ("http://192.0.2.10:8000/", "Some note", None),
])
def test_certificate_note(url, configured, expected):
    assert handout.certificate_note_for(card(url), configured) == expected
    text = handout.card_html(card(url), configured)
    assert (expected is not None) == ('class="cert"' in text)


def test_csv_and_json_carry_the_student(fleet):
    inv, state = fleet()
    cards = make_cards(inv, state)
    rows = list(csv.DictReader(io.StringIO(handout.render(cards, "csv"))))
    assert list(rows[0]) == handout.FIELDS and handout.FIELDS[0] == "student"
    assert [r["student"] for r in rows] == ["Ana López", NASTY, "", "", ""]
    assert rows[2]["user"] == "rstudio" and rows[2]["login_url"] == rows[2]["url"]  # rstudio: no secret in a URL
    data = json.loads(handout.render(cards, "json"))
    assert [d["student"] for d in data] == ["Ana López", NASTY, None, None, None]
    assert set(data[0]) == set(handout.FIELDS)


def test_table_shows_students_only_with_a_roster(fleet):
    inv, state = fleet()
    assert handout.render(make_cards(inv, state), "table").startswith("STUDENT")
    inv, state = fleet(extra="")
    assert handout.render(make_cards(inv, state), "table").startswith("HOST")


def test_assignment_is_kept_in_the_state_and_survives_reloading(fleet, tmp_path):
    inv, state = fleet()
    first = placement.assign_students(inv, state)
    assert first.new == ["Ana López", NASTY]
    again = State.load(state.path, "stats101")
    p = tmp_path / "lab.yml"
    p.write_text(INVENTORY + "roster: [Cleo, ana lópez]\n")
    inv2 = inventory.load(p)
    second = placement.assign_students(inv2, again)
    who = {name: (s.host, s.container) for s, name in second.seats.items()}
    assert who == {"ana lópez": ("192.0.2.10", "stats101-nb-1"), "Cleo": ("192.0.2.10", "stats101-r-1")}
    assert second.held == {handout.roster.SeatKey("192.0.2.10", "stats101-nb-2"): NASTY}
    notes = handout.roster_notes(second, placement.cards(inv2, again, second.seats))
    assert any("held" in n and NASTY in n for n in notes)


def test_release_gives_the_held_seat_a_new_credential_that_recovery_keeps(fleet, tmp_path):
    inv, state = fleet(extra="roster: [Ana, Ben, Cleo, Dan, Eve, Fay]\n")
    placement.assign_students(inv, state)
    old = state.data["secrets"]["192.0.2.10"]["stats101-nb-2"]
    p = tmp_path / "lab.yml"
    p.write_text(INVENTORY + "roster: [Ana, Cleo, Dan, Eve, Fay, Gus]\n")
    inv = inventory.load(p)
    with pytest.raises(InputError, match="1 new student .Gus. needs a seat but 0 are free") as e:
        placement.assign_students(inv, state)
    assert e.value.field == "roster"
    released = placement.assign_students(inv, state, release=True)
    seat = handout.roster.SeatKey("192.0.2.10", "stats101-nb-2")
    assert released.released == [seat] and released.seats[seat] == "Gus"
    saved = State.load(state.path, "stats101")
    assert saved.data["secrets"]["192.0.2.10"][seat.container] not in (old, "")
    assert saved.reissued("192.0.2.10", seat.container)  # so fleet/recover.py does not take the old one back
    assert not saved.reissued("192.0.2.10", "stats101-nb-1")
    saved.adopt("192.0.2.10", seat.container, "something else")
    assert not saved.reissued("192.0.2.10", seat.container)


def test_written_with_mode_0600(tmp_path):
    path = tmp_path / "out" / "h.html"
    handout.write_private(path, "é")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text(encoding="utf-8") == "é"


def test_handout_settings_in_the_inventory(fleet, tmp_path):
    inv, _ = fleet(extra="handout: {title: Statistics 101, certificate_note: ''}\n")
    assert (inv.model.handout.title, inv.model.handout.certificate_note) == ("Statistics 101", "")
    with pytest.raises(InputError) as e:
        fleet(extra="handout: {titel: Stats}\n")
    assert (e.value.line, e.value.field) == (6, "handout.titel") and "did you mean `title`" in str(e.value)
