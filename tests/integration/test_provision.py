"""End to end on real hosts: fresh Debian 12 servers to running Jupyter seats behind HTTPS, with `fab`.

Two real test hosts (one reached as root, one as a sudo user) plus one address
where nothing listens (loopback port 1). The tests run in order and share the
fleet: provision, inspect, re-run, status, handout, teardown. Seats sit on a
private network behind one Caddy proxy per host (a Caddy image built from
Debian's package stands in for caddy:2); the tests trust each host's proxy
authority as the handout tells students to, and verify certificates for real.
"""
from __future__ import annotations

import json
import ssl
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websocket

from tests.integration.conftest import fab, seat_http, ssh

pytestmark = pytest.mark.hosts

INVENTORY = """\
name: itest
ssh: {{key: {key}}}
hosts:
  - {{address: {a}, user: root}}
  - {{address: {b}, user: teacher}}
{extra}docker: {{source: distro}}
parallel: 4
timeouts: {{connect: 5}}
services:
  - name: nb
    kind: jupyter
    image: {image}
    publish: 8000
    seats: 2
    memory: 256m
    cpus: 0.5
    env: {{TZ: Europe/Amsterdam, GREETING: "it's \\"quoted\\"; $(touch /tmp/pwned) `id`"}}
    push: true
proxy: {{image: {caddy}, push: true}}
"""


@pytest.fixture(scope="module")
def fleet(start_hosts, built_images, keypair, tmp_path_factory):
    a, b = start_hosts("prov-a", "prov-b")
    work = tmp_path_factory.mktemp("prov")
    key = keypair[0]
    fields = dict(key=key, a=a.address, b=b.address, image=built_images["jupyter"], caddy=built_images["caddy"])
    with_bad = work / "lab.yml"
    with_bad.write_text(INVENTORY.format(**fields, extra="  - 127.0.0.1:1\n"))
    good = work / "good.yml"
    good.write_text(INVENTORY.format(**fields, extra=""))
    return {"hosts": [a, b], "key": key, "work": work, "lab": with_bad, "good": good, "state": work / "state"}


def run(fleet, *args, **kw):
    return fab(*args, cwd=fleet["work"], state_dir=fleet["state"], **kw)


def trust(fleet, host_id: str) -> ssl.SSLContext:
    """Trust a host's proxy authority, from the fleet's state, as a student's browser would once told to."""
    pem = json.loads(fleet["state"].joinpath("itest.json").read_text())["proxy_ca"][host_id]
    return ssl.create_default_context(cadata=pem)


def test_provision_fresh_hosts_with_one_unreachable(fleet):
    # Watch every command line on the sudo host while seats start: no secret may show there.
    watcher = subprocess.Popen(
        ["ssh", "-i", str(fleet["key"]), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", f"root@{fleet['hosts'][1].address}",
         "end=$(($(date +%s)+240)); while [ $(date +%s) -lt $end ]; do ps -eo args; sleep 0.05; done"],
        stdout=(fleet["work"] / "ps.log").open("w"))  # a file, not a pipe: a full pipe would stall the sampling
    started = time.monotonic()
    out = run(fleet, "provision", "--hosts", str(fleet["lab"]))
    fleet["fresh_seconds"] = time.monotonic() - started
    # Done means answering: the moment provision returns, every seat of the hosts that converged logs in
    # with its own token through the proxy (one try each, no waiting), while the run's own load is still on.
    state = json.loads(fleet["state"].joinpath("itest.json").read_text())
    answers = {(h.address, n): seat_http(f"https://{h.address}:{7999 + n}/", state["secrets"][h.address][f"itest-nb-{n}"],
                                         trust(fleet, h.address), deadline=0)
               for h in fleet["hosts"] for n in (1, 2)}
    assert set(answers.values()) == {200}, answers
    watcher.terminate()
    watcher.wait(timeout=30)
    fleet["ps"] = (fleet["work"] / "ps.log").read_text()
    fleet["output"] = out.stdout + out.stderr
    print(out.stdout, out.stderr, f"fresh provision: {fleet['fresh_seconds']:.1f} s", sep="\n")
    assert "docker run --detach --name itest-nb-1" in fleet["ps"] or "docker load" in fleet["ps"]
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    lines = out.stdout.splitlines()
    bad = [line for line in lines if line.startswith("127.0.0.1:1 ")]
    assert len(bad) == 1 and "FAILED: cannot connect to 127.0.0.1 port 1" in bad[0]
    for h in fleet["hosts"]:
        for n, port in ((1, 8000), (2, 8001)):
            row = [line for line in lines if line.startswith(f"{h.address} ") and f"itest-nb-{n} " in line]
            assert len(row) == 1 and row[0].split()[-1] == "running", out.stdout
            assert f"https://{h.address}:{port}/" in row[0]
        proxy = [line for line in lines if line.startswith(f"{h.address} ") and "itest-proxy " in line]
        assert len(proxy) == 1 and proxy[0].split()[-1] == "running"
    assert "2 of 3 hosts converged (2 changed), 1 failed" in out.stdout


def test_limits_are_in_docker_inspect(fleet):
    for h in fleet["hosts"]:
        got = json.loads(ssh(h, fleet["key"], "docker inspect itest-nb-1 itest-nb-2"))
        for c in got:
            assert c["HostConfig"]["PortBindings"] in ({}, None)  # only the proxy publishes ports
            assert list(c["NetworkSettings"]["Networks"]) == ["itest-seats"]
            assert c["HostConfig"]["Memory"] == 256 * 1024**2
            assert c["HostConfig"]["NanoCpus"] == 500_000_000
            assert c["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
            assert c["Config"]["Labels"]["fleet.name"] == "itest"
            assert c["State"]["Running"] is True
        info = ssh(h, fleet["key"], "docker info --format '{{.Driver}}'").strip()
        assert info == "overlay2"
        (proxy,) = json.loads(ssh(h, fleet["key"], "docker inspect itest-proxy"))
        assert sorted(proxy["HostConfig"]["PortBindings"]) == ["8000/tcp", "8001/tcp"]


def test_each_seat_needs_its_own_token(fleet):
    handout = run(fleet, "handout", "--hosts", str(fleet["good"]), "--format", "json")
    assert handout.returncode == 0, handout.stderr
    path = Path(handout.stdout.split("to ")[1].split(" (mode")[0])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    seats = json.loads(path.read_text())
    assert len(seats) == 4 and len({s["secret"] for s in seats}) == 4
    fleet["seats"] = seats
    for s in seats:
        assert s["url"].startswith("https://")
        ctx = trust(fleet, s["host"])
        assert seat_http(s["url"], None, ctx) == 403
        assert seat_http(s["url"], "wrong-token", ctx) == 403
        assert seat_http(s["url"], s["secret"], ctx) == 200
    first = seats[0]
    assert seat_http(first["url"], seats[1]["secret"], trust(fleet, first["host"])) == 403
    # Without trusting the proxy's authority the certificate is refused, as a browser warns.
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(first["url"] + "api/status", timeout=5, context=ssl.create_default_context())
    # Plain HTTP on a seat port reaches only the proxy, which refuses it.
    with pytest.raises(urllib.error.HTTPError) as plain:
        urllib.request.urlopen(first["url"].replace("https://", "http://") + "api/status", timeout=5)
    assert plain.value.code == 400


def test_kernel_websocket_through_the_proxy(fleet):
    seat = fleet["seats"][0]
    ctx = trust(fleet, seat["host"])
    headers = {"Authorization": f"token {seat['secret']}"}
    req = urllib.request.Request(seat["url"] + "api/kernels", data=b"{}", method="POST",
                                 headers={**headers, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60, context=ctx) as r:
        kernel = json.loads(r.read())["id"]
    ws = websocket.create_connection(
        seat["url"].replace("https://", "wss://") + f"api/kernels/{kernel}/channels",
        header=[f"Authorization: token {seat['secret']}"], sslopt={"context": ctx}, timeout=60)
    msg_id = "fleet-test-1"
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "t", "session": "s", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": "print(6 * 7)", "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    output = None
    end = time.monotonic() + 60
    while output is None and time.monotonic() < end:
        reply = json.loads(ws.recv())
        if reply.get("parent_header", {}).get("msg_id") == msg_id and reply["msg_type"] == "stream":
            output = reply["content"]["text"]
    ws.close()
    assert output == "42\n"


def test_env_values_arrive_intact_and_secrets_stay_in_0600_files(fleet):
    h = fleet["hosts"][1]
    env = ssh(h, fleet["key"], "docker exec itest-nb-1 printenv GREETING")
    assert env == "it's \"quoted\"; $(touch /tmp/pwned) `id`\n"
    assert ssh(h, fleet["key"], "ls /tmp/pwned 2>/dev/null || echo absent").strip() == "absent"
    modes = ssh(h, fleet["key"], "stat -c '%a %U %n' /etc/fleet/itest/*.env").split("\n")
    assert [m.split()[:2] for m in modes if m] == [["600", "root"], ["600", "root"]]
    argv = ssh(h, fleet["key"], "docker inspect --format '{{json .Args}} {{json .Path}}' itest-nb-1")
    tokens = json.loads(fleet["state"].joinpath("itest.json").read_text())["secrets"]
    secrets = [t for seats in tokens.values() for t in seats.values()]
    assert len(secrets) == 6  # two seats on each of three hosts, the unreachable one included
    assert all(t not in argv for t in secrets)
    assert all(t not in fleet["ps"] for t in secrets), "a secret appeared in a command line on the host"
    assert all(t not in fleet["output"] for t in secrets), "a secret appeared in fab provision's output"
    logs = ssh(h, fleet["key"], "journalctl --no-pager -q 2>/dev/null; docker logs itest-proxy 2>&1; true")
    assert all(t not in logs for t in secrets)
    assert stat.S_IMODE(fleet["state"].joinpath("itest.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(fleet["state"].stat().st_mode) == 0o700


def test_rerun_changes_nothing(fleet):
    inspect = "docker inspect --format '{{.Id}} {{.State.StartedAt}}' itest-nb-1 itest-nb-2 itest-proxy"
    before = {h.address: ssh(h, fleet["key"], inspect) for h in fleet["hosts"]}
    plan = run(fleet, "plan", "--hosts", str(fleet["good"]), "--json")
    assert plan.returncode == 0, plan.stderr
    assert [(p["host"], p["steps"]) for p in json.loads(plan.stdout)] == [(h.address, []) for h in fleet["hosts"]]
    started = time.monotonic()
    out = run(fleet, "provision", "--hosts", str(fleet["good"]))
    seconds = time.monotonic() - started
    print(out.stdout, f"re-run: {seconds:.1f} s (fresh: {fleet['fresh_seconds']:.1f} s)", sep="\n")
    assert out.returncode == 0, out.stderr
    assert "2 of 2 hosts converged (0 changed) in" in out.stdout
    after = {h.address: ssh(h, fleet["key"], inspect) for h in fleet["hosts"]}
    assert after == before


def test_status_reports_every_seat(fleet):
    out = run(fleet, "status", "--hosts", str(fleet["good"]), "--json")
    assert out.returncode == 0, out.stderr
    hosts = json.loads(out.stdout)
    assert [(s["container"], s["state"]) for h in hosts for s in h["seats"]] == [
        ("itest-nb-1", "running"), ("itest-nb-2", "running"), ("itest-proxy", "running")] * 2
    assert all(h["os"] == "Debian GNU/Linux 12 (bookworm)" for h in hosts)


def test_seat_count_change_removes_and_adds(fleet):
    fewer = fleet["work"] / "fewer.yml"
    fewer.write_text(fleet["good"].read_text().replace("seats: 2", "seats: 1"))
    out = run(fleet, "provision", "--hosts", str(fewer))
    assert out.returncode == 0, out.stdout + out.stderr
    for h in fleet["hosts"]:
        names = ssh(h, fleet["key"], "docker ps -a --filter label=fleet.name=itest --format '{{.Names}}'").split()
        assert sorted(names) == ["itest-nb-1", "itest-proxy"]


def test_teardown_removes_every_seat(fleet):
    refused = run(fleet, "teardown", "--hosts", str(fleet["good"]))
    assert refused.returncode == 2 and "--yes" in refused.stderr
    out = run(fleet, "teardown", "--hosts", str(fleet["good"]), "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    for h in fleet["hosts"]:
        assert ssh(h, fleet["key"], "docker ps -aq --filter label=fleet.name=itest") == ""
        assert ssh(h, fleet["key"], "ls /etc/fleet/itest 2>/dev/null | wc -l").strip() == "0"
        assert ssh(h, fleet["key"], "docker network ls -q --filter name=itest-seats") == ""
        assert ssh(h, fleet["key"], "docker volume ls -q --filter name=itest-proxy") == ""
