"""The handout: every seat's address and credentials, for the teacher to share.

Pure rendering of plain data (:class:`Card`, one per seat): the cards are
made from the state and the inventory by fleet/placement.py, which also
seats the roster's students, without contacting any host. This is the one
output that shows secrets, so files are written with mode 0600.

The html format is a page to print: one card per seat, 8 to an A4 sheet, to
cut apart and hand out. Everything in it is inline (styles, QR codes as SVG),
so it opens offline and leaks nothing to a network; every text from outside
(names from a CSV, addresses) is escaped.
"""
from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path

from fleet import roster
from fleet.kinds import KINDS
from fleet.report import table

FIELDS = ["student", "host", "service", "seat", "url", "user", "secret", "login_url"]
CARDS_PER_SHEET = 8  # 2 columns x 4 rows on A4: big enough to read and scan, few enough sheets to print
SELF_SIGNED_NOTE = (
    "Your browser will warn that the connection is not private (the certificate is this class's own). "
    "If the address matches this card, choose Advanced, then Proceed."
)


@dataclass(frozen=True)
class Card:
    """One seat as the handout shows it."""

    student: str | None
    host: str
    service: str
    kind: str  # jupyter | rstudio | generic | hub: names the secret (token or password) on the card
    seat: int
    url: str
    user: str
    secret: str
    login_url: str
    container: str
    trusted: bool = False  # its host's proxy serves a certificate a CA issued (browsers trust it): no note

    def export(self) -> dict[str, object]:
        """The columns of the csv and json formats (what a mail merge or an LMS import reads)."""
        return {k: v for k, v in asdict(self).items() if k in FIELDS}


def render(data: Sequence[Card], fmt: str, *, title: str = "", certificate_note: str | None = None) -> str:
    """The handout in one of the formats: table (for the terminal), csv, json or html (to print)."""
    if fmt == "html":
        return html_page(data, title=title, certificate_note=certificate_note)
    if fmt == "json":
        return json.dumps([c.export() for c in data], indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(c.export() for c in data)
        return buf.getvalue()
    named = any(c.student for c in data)
    return table((["STUDENT"] if named else []) + ["HOST", "SEAT", "USER", "PASSWORD/TOKEN", "LOGIN"],
                 [([c.student or "-"] if named else []) + [c.host, f"{c.service}-{c.seat}", c.user or "-", c.secret,
                                                            c.login_url] for c in data]) + "\n"


# --- the printable page ------------------------------------------------------


def qr_svg(data: str) -> str:
    """The QR code of ``data`` as inline SVG, sized by the page's CSS.

    Always a full QR code (never a Micro QR, which phone cameras do not read)
    with error correction M, which survives a smudged or creased print; the
    4-module quiet zone is part of the drawing so scanners find the code.
    """
    import segno  # here, not at the top: every fab command imports this module, few draw a QR code (36 ms)

    qr = segno.make_qr(data, error="m")
    return qr.svg_inline(scale=1, border=4, dark="#000", light="#fff", omitsize=True, svgclass="qr",
                         lineclass=None, title="QR code of the login link")


def certificate_note_for(card: Card, configured: str | None) -> str | None:
    """The "about the certificate" sentence for a card: only for https with the proxy's own certificate (a
    trusted one needs none), the teacher's words if given."""
    if not card.url.startswith("https://") or card.trusted:
        return None
    if configured is None:
        return SELF_SIGNED_NOTE
    return configured or None


def _secret_html(secret: str) -> str:
    """The secret in groups of four for reading aloud and typing; copying it gives it back without gaps."""
    return "".join(f"<span>{escape(secret[i:i + 4])}</span>" for i in range(0, len(secret), 4))


def card_html(card: Card, certificate_note: str | None) -> str:
    """One card: who, where, how to log in, and the QR code of the login link."""
    secret_name = KINDS[card.kind].secret_word if card.kind in KINDS else "Password"  # "hub": a password
    if card.login_url != card.url:
        how = "Scan the code, or open the address and enter the token."
    else:
        how = f"Scan the code or open the address, then sign in with the {secret_name.lower()}."
    who = (f'<h2 class="student">{escape(card.student)}</h2>' if card.student
           else '<h2 class="student blank">Name</h2>')
    user = f'<dt>User</dt><dd class="mono">{escape(card.user)}</dd>' if card.user else ""
    note = certificate_note_for(card, certificate_note)
    return f"""\
<article class="card" data-host="{escape(card.host)}" data-container="{escape(card.container)}">
  {who}
  <dl>
    <dt>Address</dt><dd><a class="login-link mono" href="{escape(card.login_url)}">{escape(card.url)}</a></dd>
    {user}<dt>{secret_name}</dt><dd class="secret mono">{_secret_html(card.secret)}</dd>
  </dl>
  <div class="qr">{qr_svg(card.login_url)}<footer>{escape(card.service)} seat {card.seat} on {escape(card.host)}</footer></div>
  <p class="how">{escape(how)}</p>
  {f'<p class="cert">{escape(note)}</p>' if note else ''}
</article>"""


STYLE = """\
@page { size: A4; margin: 10mm; }
* { box-sizing: border-box; }
html { font-family: "DejaVu Sans", "Liberation Sans", Arial, Helvetica, sans-serif; color: #000; background: #fff; }
body { margin: 0; }
.mono { font-family: "DejaVu Sans Mono", "Liberation Mono", Consolas, Menlo, monospace; }
.sheet { width: 190mm; height: 276mm; display: grid; grid-template-columns: 1fr 1fr;
         grid-template-rows: 10mm repeat(4, 1fr); break-after: page; page-break-after: always; }
.sheet:last-child { break-after: auto; page-break-after: auto; }
.sheet > header { grid-column: 1 / -1; display: flex; justify-content: space-between; align-items: baseline;
                  font-size: 8.5pt; border-bottom: 0.4mm solid #000; margin-bottom: 1.5mm; }
.sheet > header h1 { font-size: 13pt; margin: 0; }
.card { border: 0.3mm dashed #777; padding: 3.5mm 4mm 2mm; overflow: hidden;
        break-inside: avoid; page-break-inside: avoid;
        display: grid; grid-template-columns: 1fr 30mm; grid-template-rows: auto auto auto 1fr;
        grid-template-areas: "who who" "login qr" "how how" "cert cert"; column-gap: 3mm; }
.student { grid-area: who; font-size: 14pt; margin: 0 0 2.5mm; line-height: 1.15; overflow-wrap: anywhere;
           border-bottom: 0.2mm solid #999; padding-bottom: 1mm; }
.student.blank { font-size: 10pt; font-weight: normal; color: #333; padding-top: 3mm; }
.qr { grid-area: qr; }
.qr svg { width: 30mm; height: 30mm; display: block; shape-rendering: crispEdges; }
dl { grid-area: login; margin: 0; min-width: 0; }
dt { font-size: 6.5pt; text-transform: uppercase; letter-spacing: 0.06em; color: #444; margin-top: 1.3mm; }
dt:first-child { margin-top: 0; }
dd { margin: 0.3mm 0 0; font-size: 9.5pt; overflow-wrap: anywhere; }
a.login-link { color: #000; text-decoration: none; }
.secret { font-size: 10.5pt; font-weight: bold; max-width: 20ch; line-height: 1.3; }
.secret span { display: inline-block; margin-right: 1ch; }
.how { grid-area: how; font-size: 7.5pt; margin: 1.8mm 0 0; }
.cert { grid-area: cert; font-size: 7pt; line-height: 1.25; margin: 1mm 0 0; font-style: italic; }
.qr footer { font-size: 6.5pt; color: #555; text-align: center; overflow-wrap: anywhere; }
@media screen {
  html { background: #e8e8e8; }
  .sheet { width: 210mm; height: 297mm; padding: 10mm; margin: 6mm auto; background: #fff;
           box-shadow: 0 0.5mm 3mm rgba(0, 0, 0, 0.25); }
}
"""


def html_page(data: Sequence[Card], *, title: str, certificate_note: str | None) -> str:
    """A self-contained A4 page of cards, 8 a sheet, each sheet headed with the class and a reminder."""
    sheets = []
    count = (len(data) + CARDS_PER_SHEET - 1) // CARDS_PER_SHEET
    for n in range(count):
        chunk = data[n * CARDS_PER_SHEET:(n + 1) * CARDS_PER_SHEET]
        body = "\n".join(card_html(c, certificate_note) for c in chunk)
        sheets.append(f"""\
<section class="sheet">
<header><h1>{escape(title)}</h1><span>Your card logs you in: keep it to yourself. Sheet {n + 1} of {count}</span></header>
{body}
</section>""")
    return f"""\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{escape(title)}: login cards</title>
<style>
{STYLE}</style>
</head>
<body>
{chr(10).join(sheets)}
</body>
</html>
"""


def write_private(path: Path, text: str) -> None:
    """Create or replace a file readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def roster_notes(placed: roster.Assignment | None, data: Sequence[Card] | None = None) -> list[str]:
    """What the teacher should know about the roster after a run, one line each (nothing when all is usual)."""
    if placed is None:
        return []
    notes = []
    if placed.new:
        notes.append(f"placed {len(placed.new)} new student{'s' * (len(placed.new) != 1)} on free seats: "
                     + ", ".join(placed.new))
    if placed.held:
        notes.append("seats held for students no longer on the roster (nobody else gets them; "
                     "`fab provision --release-seats` wipes and frees them): "
                     + ", ".join(f"{name} ({s.host} {s.container})" for s, name in sorted(placed.held.items())))
    if placed.vacated:
        notes.append("seats held after their students were moved to a spare (`fab provision --release-seats` gives them "
                     "new passwords and frees them): " + ", ".join(f"{name} ({s.host} {s.container})"
                                                     for s, name in sorted(placed.vacated.items())))
    if placed.released:
        notes.append("released for new students, with new passwords and fresh containers: "
                     + ", ".join(f"{s.host} {s.container}" for s in placed.released))
    if placed.waiting:
        notes.append(f"{len(placed.waiting)} student{'s' * (len(placed.waiting) != 1)} get a seat once their "
                     f"servers exist: {', '.join(placed.waiting)}")
    carded = {c.student for c in data or ()}
    missing = [name for name in placed.seats.values() if name not in carded] if data is not None else []
    if missing:
        notes.append(f"no card yet for {', '.join(missing)}: their seats have no password until "
                     "`fab provision` has run with this inventory")
    return notes
