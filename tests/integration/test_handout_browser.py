"""The printed handout, as a student meets it: a real browser opens the page and follows a card's link.

One real test host with two real Jupyter seats and a roster. Headless
Chromium (Debian's package) renders the handout (the screenshot is kept in
test-artifacts/handout.png), its DOM gives each card's link, and Chromium
follows one to the seat, which must answer signed in with that card's token.
Then the roster changes: a removed student's seat is held until the teacher
releases it, and a released seat gets a new password.
"""
from __future__ import annotations

import json
import shutil
import ssl
import stat
import subprocess
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, fab

pytestmark = pytest.mark.hosts

ARTIFACTS = ROOT / "test-artifacts"
NAMES = ["Ana López", "<b>Ben</b> & Co"]  # a name that is also markup: it must print as text
INVENTORY = """\
name: handout
ssh: {{key: {key}}}
hosts: [{address}]
docker: {{source: distro}}
timeouts: {{connect: 5}}
roster: students.csv
proxy: {{image: {caddy}, push: true}}
services:
  - {{name: nb, image: {image}, publish: 8100, seats: 2, memory: 256m, push: true}}
"""
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


class Cards(HTMLParser):
    """Per card of the rendered DOM: its seat, the student's name as text, and the login link."""

    def __init__(self):
        super().__init__()
        self.cards: list[dict[str, str]] = []
        self.markup_in_names = False
        self._name = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class") or ""
        if tag == "article":
            self.cards.append({"container": a["data-container"], "student": ""})
        elif tag == "h2" and "student" in cls and "blank" not in cls:
            self._name = True
        elif self._name:
            self.markup_in_names = True
        elif tag == "a" and "login-link" in cls:
            self.cards[-1]["href"] = a["href"]

    def handle_endtag(self, tag):
        if tag == "h2":
            self._name = False

    def handle_data(self, data):
        if self._name:
            self.cards[-1]["student"] += data


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """Run Debian's Chromium headless, each time with a fresh profile, and return what it printed."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("Debian's chromium is not installed: apt-get install chromium chromium-driver (.ci/run does)")
    profiles = tmp_path_factory.mktemp("chromium")

    def run(*args: str, timeout: int = 90) -> str:
        profile = profiles / f"p{len(list(profiles.iterdir()))}"
        out = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                             capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout
    return run


@pytest.fixture(scope="module")
def fleet(start_hosts, built_images, keypair, tmp_path_factory):
    (host,) = start_hosts("handout")
    work = tmp_path_factory.mktemp("handout")
    (work / "students.csv").write_text("name,email\n" + "".join(f"{n},x@example.org\n" for n in NAMES))
    inv = work / "lab.yml"
    inv.write_text(INVENTORY.format(key=keypair[0], address=host.address, image=built_images["jupyter"],
                                    caddy=built_images["caddy"]))
    out = fab("provision", "--hosts", str(inv), cwd=work, state_dir=work / "state")
    assert out.returncode == 0, out.stdout + out.stderr
    return {"work": work, "inv": inv, "state": work / "state", "host": host}


def run(fleet, *args):
    return fab(*args, cwd=fleet["work"], state_dir=fleet["state"])


def written(out: subprocess.CompletedProcess) -> Path:
    assert out.returncode == 0, out.stdout + out.stderr
    return Path(out.stdout.split(" to ")[1].split(" (mode")[0])


def handout_json(fleet) -> dict[str, dict]:
    """The json handout, by container."""
    return {s["url"]: s for s in json.loads(written(run(fleet, "handout", "--hosts", str(fleet["inv"]),
                                                         "--format", "json")).read_text())}


def trust(fleet) -> ssl.SSLContext:
    """Trust the host's proxy authority (kept in the state), as a student's browser would once told to."""
    pem = json.loads((fleet["state"] / "handout.json").read_text())["proxy_ca"][fleet["host"].address]
    return ssl.create_default_context(cadata=pem)


def open_url(fleet, url: str, deadline: float = 90) -> tuple[int, str]:
    """GET a seat address, certificate verified, waiting while a (re)started seat boots."""
    context = trust(fleet) if url.startswith("https:") else None
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10, context=context) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            if e.code not in (502, 503) or time.monotonic() > end:  # a proxy in front answers 502 until the seat is up
                return e.code, e.read().decode()
        except OSError:
            if time.monotonic() > end:
                raise
        time.sleep(1)


def signed_in(page: str, token: str) -> bool:
    """jupyter_server marks a page served to a signed-in user with the token it accepted."""
    return f'data-jupyter-api-token="{token}"' in page


def test_handout_in_a_real_browser(fleet, chromium):
    path = written(run(fleet, "handout", "--hosts", str(fleet["inv"]), "--format", "html"))
    assert path.suffix == ".html" and stat.S_IMODE(path.stat().st_mode) == 0o600

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "handout.png"
    shot.unlink(missing_ok=True)
    chromium("--window-size=860,1180", f"--screenshot={shot}", path.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

    dom = Cards()
    dom.feed(chromium("--dump-dom", path.as_uri()))
    assert [(c["container"], c["student"]) for c in dom.cards] == [("handout-nb-1", NAMES[0]), ("handout-nb-2", NAMES[1])]
    assert not dom.markup_in_names  # "<b>Ben</b>" reached the DOM as text, not as an element

    seats = handout_json(fleet)
    card = dom.cards[0]
    seat = next(s for s in seats.values() if s["login_url"] == card["href"])
    assert seat["student"] == NAMES[0] and seat["secret"] in card["href"]
    # Chromium follows the card's link: the seat answers, signed in with this card's token
    # (--ignore-certificate-errors: an https seat's own certificate is the TLS tests' business)
    page = chromium("--ignore-certificate-errors", "--virtual-time-budget=5000", "--dump-dom", card["href"])
    assert signed_in(page, seat["secret"]), page[:2000]
    status, body = open_url(fleet, card["href"])
    assert status == 200 and signed_in(body, seat["secret"])
    status, body = open_url(fleet, seat["url"])  # the address alone does not sign anyone in
    assert not signed_in(body, seat["secret"])


def test_removed_student_seat_is_held_then_released_with_a_new_token(fleet):
    before = {s["student"]: s for s in handout_json(fleet).values()}
    (fleet["work"] / "students.csv").write_text(f"name\nCleo\n{NAMES[1]}\n")  # Ana left, Cleo joined, order changed

    held = run(fleet, "provision", "--hosts", str(fleet["inv"]))
    assert held.returncode == 2, held.stdout + held.stderr
    assert "1 new student (Cleo) needs a seat but 0 are free" in held.stderr
    assert f"{NAMES[0]} ({fleet['host'].address} handout-nb-1)" in held.stderr

    released = run(fleet, "provision", "--hosts", str(fleet["inv"]), "--release-seats")
    assert released.returncode == 0, released.stdout + released.stderr
    after = {s["student"]: s for s in handout_json(fleet).values()}
    assert set(after) == {"Cleo", NAMES[1]}
    assert after[NAMES[1]] == before[NAMES[1]]  # Ben keeps seat and token
    cleo, ana = after["Cleo"], before[NAMES[0]]
    assert cleo["url"] == ana["url"] and cleo["secret"] != ana["secret"]
    status, body = open_url(fleet, cleo["login_url"])
    assert status == 200 and signed_in(body, cleo["secret"])
    status, body = open_url(fleet, ana["login_url"])  # the old student's link no longer signs in
    assert not signed_in(body, ana["secret"])
