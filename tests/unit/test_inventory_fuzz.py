"""Hostile and broken inventories: the loader answers each with InputError naming a spot, fast.

Property-based (hypothesis): random text, random bytes, mutations of a good
inventory, and random YAML data grafted into it. Whatever comes in,
``fleet.inventory.load`` either returns an Inventory whose every value can be
used (encoded into an env file, a command line, a JSON state) or raises
InputError naming the file (and the line, once the text is YAML), never
another exception, and never takes long: every example runs under a hard
alarm. Then the YAML surprises one by one (no/on/0755/1e3, anchors, aliases,
billion laughs, a 50 MB file, special files, non-UTF-8 bytes), checked for
the right value or a clear error, in bounded time and memory, and through the
real `fab check` command line for what reaches a terminal.
"""
from __future__ import annotations

import json
import os
import re
import signal
import string
import subprocess
import sys
import time
import tracemalloc
import unicodedata
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fleet import inventory
from fleet.errors import InputError, InputErrors
from fleet.seats import expand

ROOT = Path(__file__).resolve().parents[2]
BOUND = 10.0  # seconds any one example may take before it counts as a hang

GOOD = """\
name: fuzz
ssh: {user: teacher, port: 22}
hosts:
  - 192.0.2.10
  - {address: 192.0.2.11, user: ubuntu, port: 2222}
docker: {source: distro}
tls: off
timeouts: {connect: 5, lock: 60}
services:
  - name: notebook
    kind: jupyter
    image: quay.io/jupyter/scipy-notebook:2025-06-02
    publish: 8000
    seats: 2
    memory: 512m
    cpus: 1.5
    env: {TZ: Europe/Amsterdam, MODE: "on"}
  - name: app
    kind: generic
    image: example/app:1
    port: 8080
    publish: 9000
    secret_env: TOKEN
"""

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])


class Hang(Exception):
    pass


@contextmanager
def bounded(seconds: float = BOUND):
    """Fail (instead of hanging the suite) if the block runs longer than ``seconds``."""
    def alarm(signum, frame):  # noqa: ANN001
        raise Hang(f"took longer than {seconds} s")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check(path: Path) -> inventory.Inventory | InputError:
    """The property every input must have; returns what load gave."""
    with bounded():
        try:
            inv = inventory.load(path)
        except InputError as e:
            assert e.file == str(path), e
            assert str(e).startswith(str(path)), e
            assert e.detail.strip(), e
            return e
    usable(inv)
    return inv


def usable(inv: inventory.Inventory) -> None:
    """A loaded inventory must not blow up later: env files, argv and state are all plain text."""
    for seat in expand(inv):
        seat.env_file("0" * 32).decode("utf-8")
        seat.container.encode("ascii")
    for host in inv.hosts:
        json.dumps(host.id).encode("utf-8")
        host.address.encode("utf-8")
    json.dumps(inv.model.model_dump(mode="json")).encode("utf-8")


@pytest.fixture
def write(tmp_path):
    def _write(content: str | bytes, name: str = "lab.yml") -> Path:
        p = tmp_path / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
        return p
    return _write


def test_the_good_inventory_loads(write):
    inv = check(write(GOOD))
    assert isinstance(inv, inventory.Inventory) and [s.name for s in inv.services] == ["notebook", "app"]


# --- random input -------------------------------------------------------------

YAMLISH = st.sampled_from([": ", "- ", "\n", "  ", "\t", "{", "}", "[", "]", ",", "&a ", "*a", "<<: *a", "!!binary ",
                           "!!python/object:os.system ", "? ", "|", ">", "'", '"', "#", "%YAML 1.1\n", "---\n", "...\n",
                           "~", "null", "no", "on", "0755", "1e3", "0x1F", "1:30", ".inf", ".nan", "\\", "\x00",
                           "\x1b[31m", "\ud800", "\u2028", "\ufeff", "é", "😀", "$(touch /tmp/x)", "`id`", ";", "\r\n"])


@FUZZ
@given(text=st.lists(st.one_of(YAMLISH, st.text(max_size=8)), max_size=40).map("".join))
@example(text="")
@example(text="\ufeff")
@example(text="- \x00")
def test_random_text(write, text):
    check(write(text))


@FUZZ
@given(data=st.binary(max_size=2000))
@example(data=b"\xff\xfe\x00n\x00a\x00m\x00e")  # UTF-16
@example(data=b"name: caf\xe9\n")  # Latin-1
def test_random_bytes(write, data):
    check(write(data))


@FUZZ
@given(cuts=st.lists(st.tuples(st.integers(0, len(GOOD)), st.integers(0, 40), st.one_of(YAMLISH, st.text(max_size=6))),
                     min_size=1, max_size=6))
def test_mutated_good_inventory(write, cuts):
    text = GOOD
    for at, length, insert in cuts:
        at = min(at, len(text))
        text = text[:at] + insert + text[at + length:]
    check(write(text))


@FUZZ
@given(lines=st.permutations(GOOD.splitlines()), indent=st.sampled_from(["", " ", "\t"]))
def test_shuffled_lines(write, lines, indent):
    check(write("\n".join(indent + line for line in lines)))


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                    st.text(max_size=30), st.binary(max_size=10), st.dates(), st.sampled_from(["", " ", "on", "0755"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
PATHS = st.sampled_from([(), ("name",), ("ssh",), ("ssh", "user"), ("ssh", "port"), ("ssh", "key"), ("hosts",),
                         ("hosts", 0), ("hosts", 1, "address"), ("hosts", 1, "port"), ("docker",), ("parallel",),
                         ("timeouts",), ("timeouts", "lock"), ("tls",), ("services",), ("services", 0),
                         ("services", 0, "name"), ("services", 0, "image"), ("services", 0, "env"),
                         ("services", 0, "env", "TZ"), ("services", 0, "env", "NEW"), ("services", 0, "seats"),
                         ("services", 0, "memory"), ("services", 0, "cpus"), ("services", 0, "cpuset"),
                         ("services", 0, "publish"), ("services", 1, "secret_env"), ("services", 1, "port"),
                         ("services", 0, "unknown_field"), ("roster",)])


@FUZZ
@given(where=PATHS, value=VALUES)
def test_random_values_grafted_into_the_good_inventory(write, where, value):
    data = yaml.safe_load(GOOD)
    node = data
    for p in where[:-1]:
        node = node[p]
    if where:
        node[where[-1]] = value
    else:
        data = value
    try:
        text = yaml.safe_dump(data, allow_unicode=True)
    except (yaml.YAMLError, UnicodeEncodeError):
        return  # not representable as YAML text at all
    check(write(text))


@FUZZ
@given(value=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40))
def test_any_env_value_is_taken_byte_for_byte_or_refused(write, value):
    data = yaml.safe_load(GOOD)
    data["services"][0]["env"]["V"] = value
    text = yaml.safe_dump(data, allow_unicode=True)
    meant = yaml.safe_load(text)["services"][0]["env"]["V"]  # what YAML says the file holds (NEL folds, ...)
    got = check(write(text))
    if isinstance(got, InputError):
        assert got.field == "services[0].env", got
        assert any(unicodedata.category(c) == "Cc" and c != "\t" for c in meant), (meant, got)
    else:
        (seat, *_) = expand(got)
        assert f"V={meant}\n".encode() in seat.env_file("x")


# --- YAML surprises, one by one ----------------------------------------------------

def graft(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize("written, taken", [("no", "no"), ("on", "on"), ("0755", "0755"), ("1e3", "1e3"),
                                            ("~", "~"), ("1:30", "1:30"), ("0x1F", "0x1F"), ("!!str 5", "5"),
                                            ("'quoted'", "quoted"), ('"a\\tb"', "a\tb")])
def test_env_values_are_taken_as_written(write, written, taken):
    inv = check(write(graft(GOOD, 'MODE: "on"', f"MODE: {written}")))
    assert inv.services[0].env["MODE"] == taken


@pytest.mark.parametrize("field, written, words", [
    ("seats: 2", "seats: 0755", "octal"),
    ("seats: 2", "seats: 010", "octal"),
    ("publish: 8000", "publish: 2:13:20", "sexagesimal"),
    ("seats: 2", "seats: 1e3", "whole number"),
    ("seats: 2", "seats: on", "whole number"),
    ("cpus: 1.5", "cpus: on", "must be a number"),
    ("name: fuzz", "name: no", "must be text"),
    ("name: fuzz", "name: 0755", "octal number 493"),
    ("lock: 60}", "lock: 060}", "octal number 48"),
])
def test_yaml_numbers_and_booleans_in_typed_fields_are_refused_with_the_spot(write, field, written, words):
    err = check(write(graft(GOOD, field, written)))
    assert isinstance(err, InputError), err
    assert err.line is not None and words in str(err), err


def test_anchors_aliases_and_merge_keys_work(write):
    text = graft(GOOD, "services:\n", "x-common: &common {memory: 512m, cpus: 1.5, env: {TZ: UTC}}\nservices:\n")
    err = check(write(text))
    assert isinstance(err, InputError) and "unknown field `x-common`" in str(err) and err.line == 9
    shared = graft(GOOD, "    env: {TZ: Europe/Amsterdam, MODE: \"on\"}", "    env: &env {TZ: Europe/Amsterdam}")
    shared = shared.replace("    secret_env: TOKEN", "    secret_env: TOKEN\n    env: *env")
    inv = check(write(shared))
    assert inv.services[1].env == {"TZ": "Europe/Amsterdam"}
    merged = graft(GOOD, "  - name: app\n", "  - <<: {memory: 256m, cpus: 0.5}\n    name: app\n")
    inv = check(write(merged))
    assert inv.services[1].memory == "256m"


def billion_laughs(levels: int = 12, width: int = 10) -> str:
    """A flow list whose last item expands to width**levels strings (10**11 here), in about 400 bytes."""
    items = ['&a0 ["lol"]'] + [f"&a{i} [" + ", ".join(f"*a{i - 1}" for _ in range(width)) + "]"
                                for i in range(1, levels)]
    return "[" + ", ".join(items) + "]"


@pytest.mark.parametrize("where", ["name", "hosts", "ssh.user", "services", "env", "seats", "unknown key", "top"])
def test_billion_laughs_is_answered_fast_and_small(write, where):
    bomb = billion_laughs()
    text = {
        "name": GOOD.replace("name: fuzz", f"name: {bomb}"),
        "hosts": GOOD.replace("hosts:\n  - 192.0.2.10\n  - {address: 192.0.2.11, user: ubuntu, port: 2222}",
                              f"hosts: {bomb}"),
        "ssh.user": GOOD.replace("ssh: {user: teacher, port: 22}", f"ssh: {{user: {bomb}}}"),
        "services": GOOD.split("services:")[0] + f"services: {bomb}\n",
        "env": GOOD.replace('MODE: "on"', f"MODE: {bomb}"),
        "seats": GOOD.replace("seats: 2", f"seats: {bomb}"),
        "unknown key": GOOD.replace("    seats: 2", f"    seats: 2\n    extra: {bomb}"),
        "top": bomb,
    }[where]
    tracemalloc.start()
    started = time.monotonic()
    try:
        err = check(write(text))
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert isinstance(err, InputError), err
    assert time.monotonic() - started < 5 and peak < 64 * 2**20, (time.monotonic() - started, peak)
    lines = str(err).splitlines()  # every problem at once, one short line each, at most 20 and a count
    assert len(lines) <= InputErrors.SHOWN + 1 and all(len(line) < 2000 for line in lines), str(err)[:300]


def test_a_50_mb_file_is_refused_without_reading_it(write):
    path = write(GOOD + "# " + "x" * 50_000_000 + "\n")
    tracemalloc.start()
    started = time.monotonic()
    try:
        err = check(path)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert isinstance(err, InputError) and "larger than 1000 kB" in str(err)
    assert time.monotonic() - started < 2 and peak < 8 * 2**20, peak


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/urandom", "directory", "fifo"])
def test_special_files_are_refused_at_once(tmp_path, special):
    path = Path(special)
    if special == "directory":
        path = tmp_path
    elif special == "fifo":
        path = tmp_path / "lab.yml"
        os.mkfifo(path)  # nobody writes: opening it for reading would wait forever
    err = check(path)
    assert isinstance(err, InputError) and "not a regular file" in str(err) or "directory" in str(err), err


def test_a_file_just_under_the_cap_with_thousands_of_services_is_bounded(tmp_path):
    head = GOOD.split("services:")[0] + "services:\n"
    body = "".join(f"  - {{name: s{i}, kind: generic, image: x, port: 1, publish: {3000 + i}, secret_env: T}}\n"
                   for i in range(12000))
    assert inventory.MAX_FILE_BYTES - 20_000 < len(head + body) < inventory.MAX_FILE_BYTES
    (tmp_path / "lab.yml").write_text(head + body)
    # in a process of its own, to measure its peak memory; pure-Python YAML takes ~8 s here for 1 MB
    probe = ("import resource, sys, time; from fleet import inventory; t = time.monotonic(); "
             "inv = inventory.load(sys.argv[1]); "
             "print(len(inv.services), time.monotonic() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "lab.yml")], capture_output=True, text=True,
                         timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    services, seconds, rss_kb = out.stdout.split()
    assert int(services) == 12000
    assert float(seconds) < 60 and int(rss_kb) < 512 * 1024, out.stdout


@pytest.mark.parametrize("content, line", [
    (b"name: fuzz\nhosts: [caf\xe9]\n", 2),
    (GOOD.encode() + b"# \xff\xfe\n", GOOD.count("\n") + 1),
    (b"\xef\xbb\xbf" + GOOD.encode(), None),  # a UTF-8 byte order mark is fine
])
def test_non_utf8_bytes_name_their_line(write, content, line):
    got = check(write(content))
    if line is None:
        assert isinstance(got, inventory.Inventory)
    else:
        assert isinstance(got, InputError) and got.line == line and "UTF-8" in str(got)


@pytest.mark.parametrize("text", ["[" * 5000, "a: " * 2000 + "x", "- " * 5000, "{a: " * 3000])
def test_deep_nesting_is_an_error_not_a_crash(write, text):
    assert isinstance(check(write(text)), InputError)


def test_lone_surrogates_and_control_characters_in_values_are_refused(write):
    for value in ('"\\ud800"', '"a\\u0000b"', '"\\e[31mred"', '"\\x85"'):
        err = check(write(graft(GOOD, 'MODE: "on"', f"MODE: {value}")))
        assert isinstance(err, InputError) and err.field == "services[0].env", (value, err)


# --- what reaches a terminal -------------------------------------------------------

def fab_check(path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "fabric", "--search-root", str(ROOT), "check", "--hosts", str(path)],
                          capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("hostile", [
    '"\\e]0;pwned\\a\\e[2J": 1\n',  # terminal escapes in an unknown key
    '"\\ud800\\udfff": 1\n',  # lone surrogates in a key
    'name: "\\e[31m' + "x" * 5000 + '"\n',
])
def test_fab_check_prints_one_safe_line(write, hostile):
    out = fab_check(write(GOOD + hostile))
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "\x1b" not in out.stderr + out.stdout
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("fleet: "), out.stderr[:500]
    assert re.search(r"lab\.yml:\d+", lines[0]), lines[0][:200]


def test_fab_check_on_shell_metacharacters_runs_nothing(write, tmp_path):
    marker = tmp_path / "pwned"
    text = graft(GOOD, "image: example/app:1", f"image: 'x$(touch {marker})'")
    out = fab_check(write(text))
    assert out.returncode == 2 and "is not an image reference" in out.stderr
    assert not marker.exists()
    assert all(c in string.printable for c in out.stderr)
