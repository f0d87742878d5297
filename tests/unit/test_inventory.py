"""Inventory errors name the file, line and field, and say what is valid."""

import pytest

from fleet import inventory
from fleet.errors import InputError
from tests.unit.conftest import load_error

GOOD = """\
name: stats101
ssh: {user: teacher, port: 22, key: id_test}
hosts:
  - 192.0.2.10
  - {address: 192.0.2.11, user: ubuntu, port: 2222}
  - alice@lab-3.example.org:2200
docker: {source: distro}
services:
  - name: notebook
    kind: jupyter
    image: quay.io/jupyter/scipy-notebook:2025-06-02
    publish: 8000
    seats: 2
    memory: 2g
    cpus: 1.5
    env: {TZ: Europe/Amsterdam, N: 3}
"""


error = load_error


def test_good_inventory_fills_defaults(write, tmp_path):
    inv = inventory.load(write(GOOD))
    assert [(h.address, h.user, h.port) for h in inv.hosts] == [
        ("192.0.2.10", "teacher", 22), ("192.0.2.11", "ubuntu", 2222), ("lab-3.example.org", "alice", 2200)]
    assert inv.hosts[0].key == str(tmp_path / "id_test")
    svc = inv.services[0]
    assert (svc.container_port, svc.memory_bytes, svc.login_secret_env) == (8888, 2 * 1024**3, "JUPYTER_TOKEN")
    assert list(svc.host_ports) == [8000, 8001]
    assert inv.hosts[1].id == "192.0.2.11:2222"


@pytest.mark.parametrize("old,new,line,field,words", [
    ("seats: 2", "sets: 2", 13, "services[0].sets", "did you mean `seats`"),
    ("source: distro", "source: snap", 7, "docker.source", "'official' or 'distro'"),
    ("memory: 2g", "memory: lots", 14, "services[0].memory", "e.g. 512m or 2g"),
    ("memory: 2g", "memory: 1k", 14, "services[0].memory", "minimum of 6m"),
    ("cpus: 1.5", "cpus: yes", 15, "services[0].cpus", "must be a number"),
    ("cpus: 1.5", "cpuset: 3-1", 15, "services[0].cpuset", "runs backwards"),
    ("cpus: 1.5", "cpuset: 'all'", 15, "services[0].cpuset", "\"0-1\""),
    ("  - 192.0.2.10\n", "  - 192.0.2.11:2222\n", 5, "hosts[1]", "listed twice"),
    ("N: 3", "N: [1, 2]", 16, "services[0].env", "must be text, not a list"),
    ("key: id_test", "key: nokey", 2, "ssh.key", "does not exist"),
    ("publish: 8000", "publish: 21", 12, "services[0].publish", "the SSH port (22)"),
    ("publish: 8000", "publish: 65535", 9, "services[0]", "past port 65535"),
    ("image: quay.io/jupyter/scipy-notebook:2025-06-02", "image: 'bad image'", 11, "services[0].image", "image reference"),
    ("port: 2222", "port: 99999", 5, "hosts[1].port", "less than or equal to 65535"),
    ("name: stats101", "name: Stats", 1, "name", "lower-case"),
    ("  - 192.0.2.10\n", "  - 192.0.2.10 foo\n", 4, "hosts[0].address", "not an IP address or host name"),
    ("kind: jupyter", "kind: generic", 9, "services[0]", "needs `port:`"),
    ("    cpus: 1.5\n", "    cpus: 1.5\n    seats: 3\n", 16, "services[0].seats", "appears twice"),
    ("env: {TZ: Europe/Amsterdam, N: 3}", "env: {JUPYTER_TOKEN: abc}", 9, "services[0]", "generates one per seat"),
    ("seats: 2", "seats: 0", 13, "services[0].seats", "greater than or equal to 1"),
    ("seats: 2", "seats: '2'", 13, "services[0].seats", "whole number"),
])
def test_errors_name_line_field_and_fix(write, old, new, line, field, words):
    assert old in GOOD
    e = error(write, GOOD.replace(old, new, 1))
    assert (e.line, e.field) == (line, field), str(e)
    assert words in str(e)
    assert str(e).startswith(f"{e.file}:{line}: {field}: ")
    assert [(p.line, p.field) for p in e.problems] == [(line, field)]  # every problem is listed; here there is one


def test_all_those_errors_in_one_file_come_together_in_line_order(write):
    text = GOOD
    for old, new in [("seats: 2", "sets: 2"), ("source: distro", "source: snap"), ("memory: 2g", "memory: lots"),
                     ("cpus: 1.5", "cpus: yes"), ("N: 3", "N: [1, 2]"), ("key: id_test", "key: nokey"),
                     ("name: stats101", "name: Stats"), ("  - 192.0.2.10\n", "  - 192.0.2.11:2222\n")]:
        text = text.replace(old, new, 1)
    e = error(write, text)
    assert [(p.line, p.field) for p in e.problems] == [
        (1, "name"), (2, "ssh.key"), (5, "hosts[1]"), (7, "docker.source"), (13, "services[0].sets"),
        (14, "services[0].memory"), (15, "services[0].cpus"), (16, "services[0].env")], str(e)
    for words in ("lower-case", "does not exist", "listed twice", "'official' or 'distro'", "did you mean `seats`",
                  "e.g. 512m or 2g", "must be a number", "must be text, not a list"):
        assert words in str(e), words


def test_empty_host_list(write):
    e = error(write, GOOD.replace("hosts:\n  - 192.0.2.10\n  - {address: 192.0.2.11, user: ubuntu, port: 2222}\n"
                                  "  - alice@lab-3.example.org:2200\n", "hosts: []\n"))
    assert (e.field, e.line) == ("hosts", 3)
    assert "at least one" in str(e)


def test_overlapping_services(write):
    text = GOOD + """\
  - name: rstudio
    kind: rstudio
    image: rocker/rstudio:4.4.1
    publish: 8001
"""
    e = error(write, text)
    assert (e.field, e.line) == ("services[1].publish", 20)
    assert "overlap those of service 'notebook' (8000-8001); start this one at 8002" in str(e)


def test_generic_needs_secret_env(write):
    e = error(write, GOOD.replace("kind: jupyter", "kind: generic\n    port: 80"))
    assert "secret_env" in str(e) and "authentication" in str(e)


@pytest.mark.parametrize("text,words", [
    ("", "empty"),
    ("- a\n- b\n", "top level must be a mapping"),
    ("name: [unclosed\n", "not valid YAML"),
    ("name: a\nhosts: *nope\n", "not valid YAML"),
])
def test_broken_yaml(write, text, words):
    assert words in str(error(write, text))


def test_missing_file_and_non_utf8(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        inventory.load(tmp_path / "nope.yml")
    p = tmp_path / "latin1.yml"
    p.write_bytes(b"name: x\n# caf\xe9\n")
    with pytest.raises(InputError, match="not UTF-8") as e:
        inventory.load(p)
    assert e.value.line == 2


def test_billion_laughs_is_cheap(write):
    lol = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    prev = "a"
    for i in range(1, 12):
        lol += f"l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        prev = f"l{i}"
    e = error(write, lol + "name: x\nhosts: [h]\nservices: []\n")
    assert "unknown field `a`" in str(e)


@pytest.mark.parametrize("written", ["no", "on", "0755", "1e3", "1.10", "null", "~", "3", "0x1F", "2001-01-01"])
def test_env_values_arrive_as_written(write, written):
    inv = inventory.load(write(GOOD.replace("N: 3", f"N: {written}")))
    assert inv.services[0].env["N"] == written


@pytest.mark.parametrize("text,value", [("512m", 512 * 1024**2), ("2g", 2 * 1024**3), ("1.5GiB", int(1.5 * 1024**3)),
                                        ("700MB", 700 * 1024**2), ("6291456", 6291456)])
def test_parse_memory(text, value):
    assert inventory.parse_memory(text) == value


@pytest.mark.parametrize("text,cpus", [("0", (0,)), ("0-1", (0, 1)), ("0-2,5", (0, 1, 2, 5)), ("3,1", (1, 3))])
def test_parse_cpuset(text, cpus):
    assert inventory.parse_cpuset(text) == cpus
