"""mode: hub on three real test hosts (one Debian 13 manager with docker.io 26, two Debian 12 workers).

`fab provision` forms the swarm and runs JupyterHub (6.1.1, dockerspawner's SwarmSpawner, the idle culler)
behind the fleet's Caddy; students log in with the handout's username and password through the HTTPS class
address as a browser does (the login form, cookies, then the REST API with a token the session asks for),
their server starts as a Swarm service on a worker, runs a kernel. The tests run in order and share the fleet.
"""
from __future__ import annotations

import json
import re
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import requests
import websocket

from fleet.hub.config import escaped
from practice import images
from tests.integration.conftest import fab

pytestmark = pytest.mark.hosts

INVENTORY = """\
name: hubt
mode: hub
ssh: {{key: {key}}}
hosts: [{a}, {b}, {c}]
docker: {{source: distro}}
tls: internal
timeouts: {{connect: 10}}
hub:
  port: 8443
  idle_timeout: 40s
  admin: teacher
  image: {hub}
  push: true
  start_timeout: 180
roster: [Ada Lovelace, Bob Builder]
services:
  - {{name: notebook, kind: jupyter, image: {singleuser}, memory: 256m, cpus: 0.5, push: true}}
proxy: {{image: {caddy}, push: true}}
"""


def on(host, *argv: str, check: bool = True) -> str:
    """Look inside a test host with docker exec (fleet itself only uses SSH)."""
    out = subprocess.run(["docker", "exec", host.container, *argv], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 or not check, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def hub(start_hosts, built_images, keypair, run_label, tmp_path_factory):
    from practice import hosts as practice_hosts

    hub_image, singleuser = images.ensure_hub_image(), images.ensure_singleuser_image()
    (a,) = practice_hosts.start_hosts([f"{run_label}-hub-a"], keypair[1], label=run_label,
                                      image=images.ensure_testhost13_image())
    b, c = start_hosts("hub-b", "hub-c")
    work = tmp_path_factory.mktemp("hub")
    inv = work / "lab.yml"
    inv.write_text(INVENTORY.format(key=keypair[0], a=a.address, b=b.address, c=c.address, hub=hub_image,
                                    singleuser=singleuser, caddy=built_images["caddy"]))
    return {"hosts": [a, b, c], "work": work, "inv": inv, "state": work / "state", "url": f"https://{a.address}:8443"}


def run(hub, *args: str, timeout: int = 900):
    return fab(*args, "--hosts", str(hub["inv"]), cwd=hub["work"], state_dir=hub["state"], timeout=timeout)


def trust(hub) -> str:
    """The root of the manager's proxy authority, as the state keeps it for the handout (a file for requests)."""
    state = json.loads((hub["state"] / "hubt.json").read_text())
    pem = hub["work"] / "ca.pem"
    pem.write_text(state["proxy_ca"][hub["hosts"][0].address])
    return str(pem)


class Student:
    """A browser: the login form with its _xsrf, cookies kept; then a token for the REST API."""

    def __init__(self, hub, user: str, password: str):
        self.base, self.user, self.ca = hub["url"], user, trust(hub)
        self.session = requests.Session()  # verify= on every request: REQUESTS_CA_BUNDLE would override session.verify
        form = self.session.get(f"{self.base}/hub/login", timeout=30, verify=self.ca)
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', form.text)
        data = {"username": user, "password": password, **({"_xsrf": xsrf.group(1)} if xsrf else {})}
        self.login = self.session.post(f"{self.base}/hub/login?next=", data=data, allow_redirects=False, timeout=30,
                                       verify=self.ca)
        self.token = ""

    @property
    def ok(self) -> bool:
        return self.login.status_code == 302

    def api_token(self) -> str:
        xsrf = self.session.cookies.get("_xsrf")
        r = self.session.post(f"{self.base}/hub/api/users/{self.user}/tokens", json={"note": "test", "expires_in": 3600},
                              headers={"X-XSRFToken": xsrf} if xsrf else {}, timeout=30, verify=self.ca)
        r.raise_for_status()
        self.token = r.json()["token"]
        return self.token

    def start(self, deadline: float = 240) -> float:
        """Start the server as the browser does, and wait until it answers; the seconds it took."""
        started = time.monotonic()
        self.session.get(f"{self.base}/hub/spawn/{self.user}", timeout=60, allow_redirects=False, verify=self.ca)
        while time.monotonic() - started < deadline:
            r = requests.get(f"{self.base}/user/{self.user}/api/status", headers=self.headers, verify=self.ca, timeout=10,
                             allow_redirects=False)
            if r.status_code == 200:
                return time.monotonic() - started
            time.sleep(0.5)
        raise AssertionError(f"{self.user}'s server did not answer: {r.status_code}")

    @property
    def headers(self) -> dict:
        return {"Authorization": f"token {self.token}"}

    def kernel(self, code: str = "print(6*7)") -> str:
        base = f"{self.base}/user/{self.user}/api/kernels"
        k = requests.post(base, headers=self.headers, json={"name": "python3"}, verify=self.ca, timeout=60).json()
        ws = websocket.create_connection(base.replace("https", "wss") + f"/{k['id']}/channels", timeout=60,
                                         header=[f"Authorization: token {self.token}"],
                                         sslopt={"ca_certs": self.ca, "cert_reqs": ssl.CERT_REQUIRED})
        ws.send(json.dumps({"header": {"msg_id": "t1", "username": self.user, "session": "s", "msg_type": "execute_request",
                                       "version": "5.3"}, "parent_header": {}, "metadata": {}, "channel": "shell",
                            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                                        "allow_stdin": False, "stop_on_error": True}}))
        out, end = "", time.monotonic() + 60
        while time.monotonic() < end:
            m = json.loads(ws.recv())
            if m.get("parent_header", {}).get("msg_id") != "t1":
                continue
            if m["msg_type"] == "stream":
                out += m["content"]["text"]
            if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle" and out:
                break
        ws.close()
        return out.strip()

    def put(self, name: str, text: str) -> None:
        requests.put(f"{self.base}/user/{self.user}/api/contents/{name}", headers=self.headers, verify=self.ca,
                     json={"type": "file", "format": "text", "content": text}, timeout=30).raise_for_status()

    def get(self, name: str) -> str:
        r = requests.get(f"{self.base}/user/{self.user}/api/contents/{name}", headers=self.headers, verify=self.ca,
                         timeout=30)
        r.raise_for_status()
        return r.json()["content"]


ADA = f"hubt-user-{escaped('ada-lovelace')}"  # the Swarm service of Ada's server, as the spawner names it


def node_of(hub, service: str) -> str:
    return on(hub["hosts"][0], "docker", "service", "ps", "--filter", "desired-state=running", "--format", "{{.Node}}",
              service, check=False).strip()


def test_provision_forms_the_swarm_and_serves_the_class_at_one_address(hub):
    started = time.monotonic()
    out = run(hub, "provision")
    print(out.stdout, out.stderr[-3000:], f"provision: {time.monotonic() - started:.1f} s", sep="\n")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "3 of 3 hosts converged" in out.stdout
    a, b, c = hub["hosts"]
    nodes = on(a, "docker", "node", "ls", "--format", "{{.Status}} {{.ManagerStatus}}").split("\n")
    assert sorted(n.strip() for n in nodes if n) == ["Ready", "Ready", "Ready Leader"]
    for h in (b, c):
        assert on(h, "docker", "info", "--format", "{{.Swarm.LocalNodeState}}").strip() == "active"
    # the join token never showed in a process list: it travelled in a root-only file the join removed
    assert on(b, "sh", "-c", "ls /etc/fleet/hubt/ 2>/dev/null || true").strip() == ""
    # the hub answers only through Caddy's HTTPS: nothing of it is published
    ports = json.loads(on(a, "docker", "inspect", "hubt-hub"))[0]["HostConfig"]["PortBindings"]
    assert not ports
    r = requests.get(f"{hub['url']}/hub/api/", verify=trust(hub), timeout=10)
    assert r.status_code == 200 and "version" in r.json()


def test_the_handout_gives_one_address_and_a_password_per_student(hub):
    out = run(hub, "handout", "--format", "json")
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.split("to ")[1].split(" (mode")[0])
    cards = json.loads(path.read_text())
    hub["cards"] = {c["student"] or "teacher": c for c in cards}
    assert sorted(hub["cards"]) == ["Ada Lovelace", "Bob Builder", "teacher"]
    assert {c["url"] for c in cards} == {hub["url"] + "/"}
    assert [hub["cards"][n]["user"] for n in ("Ada Lovelace", "Bob Builder")] == ["ada-lovelace", "bob-builder"]
    assert len({c["secret"] for c in cards}) == 3 and all(len(c["secret"]) == 32 for c in cards)
    state = (hub["state"] / "hubt.json").read_text()
    manager = hub["hosts"][0]
    hashes = on(manager, "cat", "/etc/fleet/hubt/hub/passwords")
    assert all(c["secret"] not in hashes for c in cards)  # the hub has hashes only
    assert on(manager, "stat", "-c", "%a", "/etc/fleet/hubt/hub/passwords").strip() == "600"
    assert all(c["secret"] in state for c in cards)


def test_a_student_logs_in_and_gets_a_server_on_a_worker_with_limits(hub):
    ada = hub["cards"]["Ada Lovelace"]
    student = Student(hub, ada["user"], ada["secret"])
    assert student.ok, (student.login.status_code, student.login.text[:300])
    assert "Secure" in student.login.headers.get("set-cookie", "")
    student.api_token()
    seconds = student.start()
    print(f"login to a server answering: {seconds:.1f} s")
    node = node_of(hub, ADA)
    workers = {on(h, "hostname").strip() for h in hub["hosts"][1:]}
    assert node in workers, (node, workers)
    spec = json.loads(on(hub["hosts"][0], "docker", "service", "inspect", ADA))[0]["Spec"]
    resources = spec["TaskTemplate"]["Resources"]
    assert resources["Limits"] == {"NanoCPUs": 500_000_000, "MemoryBytes": 256 * 1024**2}
    assert resources["Reservations"] == {"NanoCPUs": 500_000_000, "MemoryBytes": 256 * 1024**2}
    assert student.kernel() == "42"
    student.put("notes.txt", "Ada was here\n")
    hub["ada"], hub["ada_node"] = student, node


def test_wrong_and_borrowed_passwords_are_refused(hub):
    cards = hub["cards"]
    assert Student(hub, cards["Ada Lovelace"]["user"], "not-the-password").login.status_code == 403
    assert Student(hub, cards["Ada Lovelace"]["user"], cards["Bob Builder"]["secret"]).login.status_code == 403
    assert Student(hub, "mallory", cards["Ada Lovelace"]["secret"]).login.status_code == 403
    assert requests.get(f"{hub['url']}/hub/signup", verify=trust(hub), timeout=10).status_code == 404


def test_a_second_run_changes_nothing(hub):
    out = run(hub, "provision")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "3 of 3 hosts converged (0 changed)" in out.stdout, out.stdout
    assert hub["ada"].kernel() == "42"  # the running server was not touched


def test_status_shows_the_nodes_and_where_each_student_works(hub):
    out = run(hub, "status", "--json")
    assert out.returncode == 0, out.stderr
    hosts = {h["host"]: h for h in json.loads(out.stdout)}
    assert all("node ready, active" in h["usage"] for h in hosts.values())
    rows = {s["container"]: (host, s) for host, h in hosts.items() for s in h["seats"]}
    host, ada = rows["ada-lovelace"]
    assert ada["state"].startswith(f"server on {hub['ada_node']}") and ada["memory"].endswith("/ 256.0 MiB")
    assert ada["health"].startswith("active")
    assert rows["bob-builder"][1]["state"] == "no server" and rows["bob-builder"][1]["health"] == "never logged in"


def test_the_culler_stops_an_idle_server_and_the_files_come_back(hub):
    ada = hub["ada"]
    deadline = time.monotonic() + 240
    while node_of(hub, ADA) and time.monotonic() < deadline:
        time.sleep(2)
    assert not node_of(hub, ADA), "the idle server was not culled"
    again = Student(hub, ada.user, hub["cards"]["Ada Lovelace"]["secret"])
    again.api_token()
    again.start()
    assert node_of(hub, ADA) == hub["ada_node"]  # kept on the node that holds her files
    assert again.get("notes.txt") == "Ada was here\n"
    hub["ada"] = again


def test_collect_brings_back_each_students_files_from_their_node(hub):
    dest = hub["work"] / "collected"
    out = run(hub, "collect", "--dest", str(dest))
    assert out.returncode == 0, out.stdout + out.stderr
    assert (dest / "Ada Lovelace" / "notes.txt").read_text() == "Ada was here\n"


def test_with_one_worker_stopped_the_others_keep_serving(hub):
    a, b, c = hub["hosts"]
    down = b if on(b, "hostname").strip() != hub["ada_node"] else c
    on(down, "systemctl", "stop", "docker.socket", "docker")
    try:
        assert hub["ada"].kernel() == "42"
        deadline, seen = time.monotonic() + 90, {}
        while time.monotonic() < deadline:  # Swarm marks a node down once its heartbeats stop
            out = run(hub, "status", "--json")
            seen = {h["host"]: h for h in json.loads(out.stdout)}
            if "node down" in seen[down.address].get("usage", ""):
                break
            time.sleep(3)
        assert "node down" in seen[down.address]["usage"], seen[down.address]
        assert "node ready" in seen[a.address]["usage"]
    finally:
        on(down, "systemctl", "start", "docker")


def test_teardown_leaves_no_service_network_volume_or_swarm(hub):
    out = run(hub, "teardown", "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    for h in hub["hosts"]:
        assert on(h, "docker", "info", "--format", "{{.Swarm.LocalNodeState}}").strip() == "inactive"
        assert on(h, "docker", "ps", "-aq", "--filter", "label=fleet.name=hubt").strip() == ""
        assert on(h, "docker", "volume", "ls", "-q", "--filter", "label=fleet.name=hubt").strip() == ""
        assert "hubt" not in on(h, "docker", "network", "ls", "--format", "{{.Name}}")
        assert "hubt" not in on(h, "docker", "volume", "ls", "--format", "{{.Name}}")
