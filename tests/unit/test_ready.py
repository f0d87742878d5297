"""The readiness check as plain data: what is asked of each seat, what its answers mean.

The script itself runs on real hosts (tests/integration/test_ready.py); here the
decisions around it: the URL a student would open, the curl config that carries
the secret (only on stdin), the kinds' rules, and the one line a failed host gets.
"""
from __future__ import annotations

import pytest

from fleet import desired, inventory, ready
from fleet.kinds import KINDS

INVENTORY = """\
name: lab
hosts: [203.0.113.7]
{tls}services:
  - {{name: nb, image: fleet-jupyter:test, publish: 8000, seats: 2}}
  - {{name: rs, kind: rstudio, image: rocker/rstudio:4.4.2, publish: 8100, ready_timeout: 240}}
  - {{name: web, kind: generic, image: nginx, port: 80, secret_env: PW, publish: 8200}}
  - {{name: api, kind: generic, image: nginx, port: 80, secret_env: PW, publish: 8300, health: /healthz}}
"""
SECRETS = {"lab-nb-1": "aaaa", "lab-nb-2": "bbbb", "lab-rs-1": "cccc", "lab-web-1": "dddd", "lab-api-1": "eeee"}


def checks(tmp_path, tls: str = "", **kw):
    p = tmp_path / "lab.yml"
    p.write_text(INVENTORY.format(tls=tls))
    inv = inventory.load(p)
    return {c.container: c for c in ready.checks(inv, inv.hosts[0], desired.for_host(inv, inv.hosts[0], SECRETS),
                                                 SECRETS, **kw)}


def test_behind_the_proxy_each_seat_is_asked_by_its_public_address(tmp_path):
    c = checks(tmp_path)
    assert set(c) == set(SECRETS)  # the proxy is no seat
    nb = c["lab-nb-2"]
    assert nb.url == "https://203.0.113.7:8001/api/status"
    assert nb.connect == "203.0.113.7:8001:127.0.0.1:8001"
    assert (nb.expect, nb.timeout, nb.secret) == ("token", 120, "bbbb")
    assert (c["lab-rs-1"].url, c["lab-rs-1"].expect, c["lab-rs-1"].timeout) == ("https://203.0.113.7:8100/", "ok", 240)
    # a generic server: any HTTP answer (the proxy answers 502 while the seat refuses connections)
    assert (c["lab-web-1"].url, c["lab-web-1"].expect, c["lab-web-1"].timeout) == ("https://203.0.113.7:8200/", "any", 60)
    assert (c["lab-api-1"].url, c["lab-api-1"].expect) == ("https://203.0.113.7:8300/healthz", "ok")


def test_without_tls_each_seat_is_asked_on_its_own_port(tmp_path):
    c = checks(tmp_path, "tls: off\n")
    assert (c["lab-nb-1"].url, c["lab-nb-1"].connect) == ("http://127.0.0.1:8000/api/status", "")
    assert c["lab-web-1"].expect == "any"


def test_restart_counts_and_a_timeout_for_every_seat(tmp_path):
    c = checks(tmp_path, restarts={"lab-nb-1": 4}, timeout=7)
    assert (c["lab-nb-1"].restarts, c["lab-nb-2"].restarts) == (4, 0)
    assert {x.timeout for x in c.values()} == {7}


def test_the_secret_travels_only_in_the_curl_config_on_stdin(tmp_path):
    c = checks(tmp_path)
    assert ready.curl_config(c["lab-nb-1"]) == [
        'url = "https://203.0.113.7:8000/api/status"', 'output = "/dev/null"',
        'write-out = "%{http_code}\\n"', "silent", "max-time = 3", "connect-timeout = 2", "globoff",
        'connect-to = "203.0.113.7:8000:127.0.0.1:8000"', 'header = "Authorization: token aaaa"']
    assert not any("header" in line for line in ready.curl_config(c["lab-rs-1"]))  # a password is not a token
    text = ready.stdin(c.values(), [("lab-proxy", 2)]).decode()
    assert text.startswith("seat 1 lab-nb-1 token 120 0\n")
    assert text.endswith("watch lab-proxy 2\n")
    argv = ready.argv(wait=True, volume="lab-proxy-data", trust="root=caddy/pki/authorities/local/root.crt")
    assert argv[:2] == ("sh", "-c") and argv[3:] == ("sh", "wait", "lab-proxy-data", "root=caddy/pki/authorities/local/root.crt")
    assert not any(s in " ".join(argv) for s in SECRETS.values())


def test_curl_config_values_are_quoted():
    check = ready.Check("x", 'https://h:1/a"b\\c', "token", 5, secret='s"\\')
    assert ready.curl_config(check)[0] == 'url = "https://h:1/a\\"b\\\\c"'
    assert ready.curl_config(check)[-1] == 'header = "Authorization: token s\\"\\\\"'
    with pytest.raises(ValueError):
        ready.curl_config(ready.Check("x", "https://h/\n", "ok", 5))
    with pytest.raises(ValueError):
        ready.stdin([ready.Check("two words", "https://h/", "ok", 5)])


def test_the_wait_is_bounded_by_the_longest_seat():
    cs = [ready.Check("a", "u", "ok", 30), ready.Check("b", "u", "ok", 200)]
    assert ready.timeout_for(cs, wait=True) == 200 + ready.WHY_GRACE
    assert ready.timeout_for(cs, wait=False) == ready.WHY_GRACE


OUTPUT = """\
ready lab-nb-1 200 3
stopped lab-nb-2 restarting 1
silent lab-web-1 502
--- lab-nb-2
3||1
[I 10:00] starting with token aaaa-secret
fatal: /etc/app.conf is missing aaaa-secret
--- lab-web-1
0||0
listening on :8080
"""


def test_answers_and_the_one_line_that_explains_them():
    answers, lost, why = ready.parse(OUTPUT)
    assert lost == []
    assert answers["lab-nb-1"] == ready.Answer("lab-nb-1", True, "200", 3)
    assert answers["lab-nb-2"].stopped == "restarting" and not answers["lab-nb-2"].ready
    assert answers["lab-web-1"].code == "502"
    assert [a.health for a in answers.values()] == ["up (200)", "DOWN (restarting)", "DOWN (502)"]
    line = ready.explain(answers, lost, why, ["aaaa-secret"], {"lab-web-1": 60})
    assert line == ("lab-nb-2 keeps stopping (exit code 3, restarted 1 time): fatal: /etc/app.conf is missing …; "
                    "lab-web-1 did not answer within 60 s (last: HTTP 502): listening on :8080")
    assert "aaaa-secret" not in line


def test_alike_failures_are_one_clause():
    answers, lost, why = ready.parse("stopped a exited 0\nstopped b exited 0\n--- a\n1||0\nboom\n--- b\n1||0\nboom\n")
    assert ready.explain(answers, lost, why, [], {}) == "a, b keep stopping (exit code 1): boom"


def test_a_stopped_proxy_is_the_one_thing_said():
    answers, lost, why = ready.parse("lost lab-proxy exited 0\nsilent lab-nb-1 000\n--- lab-proxy\n1||0\nbad Caddyfile\n"
                                     "--- lab-nb-1\n0||0\nrunning\n")
    assert lost == ["lab-proxy"]
    assert ready.explain(answers, lost, why, [], {}) == "lab-proxy keeps stopping (exit code 1): bad Caddyfile"


def test_every_kind_is_one_entry_with_everything_fleet_needs():
    for kind in KINDS.values():
        assert kind.ready.expect in ("token", "ok", "any") and kind.ready.timeout > 0
        assert kind.ready.path.startswith("/")
    assert KINDS["jupyter"].login_link("https://h:1/", "abc") == "https://h:1/?token=abc"
    assert KINDS["rstudio"].login_link("https://h:1/", "abc") == "https://h:1/"
    assert (KINDS["jupyter"].secret_word, KINDS["rstudio"].secret_word) == ("Token", "Password")
