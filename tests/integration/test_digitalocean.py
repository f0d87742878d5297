"""Droplets end to end: the real `fab` against the DigitalOcean stand-in, whose droplets are real test hosts.

The stand-in (tests/standin) listens on 127.0.0.1 and validates every request
and every answer against DigitalOcean's OpenAPI specification; each test
asserts it saw no violation. Each droplet it creates is a test host container
booted for it, reached at its own address. Every test reports how many
droplets it created and destroyed, and the module ends with a check that no
droplet container is left in `docker ps`.

The tests of one fleet (`dolab`) run in order: from nothing to seats on
three droplets, re-run, shrink, grow under API storms, teardown without the
state file. Other fleets: a kill right after the create call, droplets that
never become usable, bad input.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from practice import hosts as practice_hosts
from practice import images
from tests.integration.conftest import FAB, ROOT, fab
from tests.integration.test_provision import seat_http
from tests.standin import Fault, StandIn
from tests.standin.catalog import HOURS_A_MONTH, SIZES

pytestmark = pytest.mark.hosts

SIZE = "s-1vcpu-2gb"
INVENTORY = """\
name: {name}
digitalocean:
  count: {count}
  region: ams3
  size: {size}
  image: ubuntu-24-04-x64
  ssh_key: {pub}
docker: {{source: distro}}
tls: off
parallel: 4
timeouts: {{connect: 10, droplet: {droplet_timeout}}}
services:
  - name: nb
    kind: jupyter
    image: {image}
    publish: 8000
    seats: 2
    memory: 256m
    cpus: 0.5
    push: true
"""
REPORT: list[tuple[str, int, int, float]] = []


@pytest.fixture(scope="module")
def standin(built_images, run_label):
    images.ensure_cloudhost_image()  # what the droplets boot: the test host with cloud-init
    with StandIn(label=f"{run_label}-do", active_delay=3.0, destroy_delay=1.0) as api:
        yield api
        leaked = [d["name"] for d in api.droplets()]  # before the stand-in's own clean-up: fleet's work only
    left = api.containers()
    print("\nDroplets per test (created / destroyed, seconds):")
    for name, created, destroyed, seconds in REPORT:
        print(f"  {name}: {created} / {destroyed}, {seconds:.0f} s")
    print(f"  in all: {api.counts['created']} created, {api.counts['destroyed']} destroyed")
    assert leaked == [], f"droplets fleet left behind: {leaked}"
    assert left == [], f"droplet containers left behind: {left}"


@pytest.fixture(autouse=True)
def held_to_the_contract(standin, request, record_property):
    """Count what each test created and destroyed, and fail it if the stand-in saw a contract violation."""
    standin.clear_faults()
    before, seen, started = Counter(standin.counts), len(standin.violations), time.monotonic()
    yield
    created = standin.counts["created"] - before["created"]
    destroyed = standin.counts["destroyed"] - before["destroyed"]
    REPORT.append((request.node.name, created, destroyed, time.monotonic() - started))
    record_property("droplets_created", created)
    record_property("droplets_destroyed", destroyed)
    print(f"DROPLETS {request.node.name}: created {created}, destroyed {destroyed}")
    assert standin.violations[seen:] == [], "requests or answers outside DigitalOcean's specification"
    assert not [e for e in standin.errors if "not implemented" in e], standin.errors


class Fleet:
    """One fleet's inventory, state and view of the stand-in."""

    def __init__(self, standin: StandIn, work: Path, name: str, pub: Path, image: str):
        self.standin, self.work, self.name, self.pub, self.image = standin, work, name, pub, image
        self.state = work / "state"
        self.tag = f"fleet:{name}"

    def inventory(self, count: int, *, droplet_timeout: int = 180) -> Path:
        path = self.work / f"{self.name}-{count}.yml"
        path.write_text(INVENTORY.format(name=self.name, count=count, size=SIZE, pub=self.pub, image=self.image,
                                         droplet_timeout=droplet_timeout))
        return path

    def fab(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        out = fab(*args, cwd=self.work, state_dir=self.state, env={**self.standin.env(), **(env or {})})
        print(f"$ fab {' '.join(args)}  -> {out.returncode}\n{out.stdout}\n{out.stderr}")
        for stream in (out.stdout, out.stderr):
            assert "Traceback" not in stream
            assert self.standin.token not in stream  # the token never reaches the terminal
        return out

    def droplets(self) -> list[dict]:
        return self.standin.droplets(self.tag)

    def containers(self) -> list[str]:
        return [c for c in self.standin.containers() if c.startswith(f"{self.standin.label}-{self.name}-")]

    def state_data(self) -> dict:
        return json.loads((self.state / f"{self.name}.json").read_text())


def keypair(tmp_path_factory, name: str) -> Path:
    key, _ = practice_hosts.make_keypair(tmp_path_factory.mktemp(name))
    return key.with_suffix(".pub")


@pytest.fixture(scope="module")
def lab(standin, built_images, tmp_path_factory):
    return Fleet(standin, tmp_path_factory.mktemp("dolab"), "dolab", keypair(tmp_path_factory, "dolab-key"),
                 built_images["jupyter"])


def running_seats(out: str, address: str) -> list[str]:
    return [line.split()[1] for line in out.splitlines() if line.startswith(f"{address} ") and line.split()[-1] == "running"]


# --- one fleet, in order ------------------------------------------------------------------------


def test_from_nothing_to_running_seats_on_three_droplets(lab):
    inv = lab.inventory(3)
    started = time.monotonic()
    out = lab.fab("provision", "--hosts", str(inv), "--yes")
    print(f"from nothing to seats on 3 droplets: {time.monotonic() - started:.1f} s")
    assert out.returncode == 0, out.stderr
    hourly = round(SIZES[SIZE][4] / HOURS_A_MONTH, 5)
    assert "create  3: dolab-01, dolab-02, dolab-03" in out.stdout
    assert f"price: ${hourly:.4f} an hour each; 3 droplets: ${hourly * 3:.4f} an hour, ${hourly * 72:.2f} for 24 hours" \
        in out.stdout
    droplets = lab.droplets()
    assert [(d["name"], d["status"]) for d in droplets] == [(f"dolab-0{n}", "active") for n in (1, 2, 3)]
    assert len(lab.containers()) == 3
    state = lab.state_data()
    assert sorted(int(i) for i in state["digitalocean"]["droplets"]) == [d["id"] for d in droplets]
    assert state["digitalocean"]["ssh_key"]["created_by_fleet"] is True
    assert lab.standin.token not in (lab.state / "dolab.json").read_text()
    for d in droplets:  # Docker at first boot: cloud-init ran the user_data, which holds fleet's own install steps
        data = lab.standin.user_data(d["id"])
        assert data.startswith("#cloud-config\n") and "install docker.io" in data and "[sh, /var/lib/fleet/firstboot.sh]" in data
        machine = next(c for c in lab.containers() if c.endswith(f"-{d['id']}"))
        done = subprocess.run(["docker", "exec", machine, "cat", "/var/lib/fleet/firstboot"], capture_output=True,
                              text=True, timeout=30)
        assert done.stdout == "ok\n", (done.stdout, done.stderr)
    assert "install Docker" not in out.stderr  # the droplets had it from their first boot: nothing over SSH
    for d in droplets:
        address = d["networks"]["v4"][0]["ip_address"]
        assert running_seats(out.stdout, address) == ["dolab-nb-1", "dolab-nb-2"], out.stdout
    assert "3 of 3 hosts converged (3 changed)" in out.stdout
    # what a student sees: every seat answers, with its own token only
    handout = lab.fab("handout", "--hosts", str(inv), "--format", "json", "--output", "-")
    seats = json.loads(handout.stdout)
    assert len(seats) == 6 and {s["host"] for s in seats} == {d["networks"]["v4"][0]["ip_address"] for d in droplets}
    for s in seats:
        assert seat_http(s["url"], None) == 403
        assert seat_http(s["url"], s["secret"]) == 200


def test_rerun_creates_nothing_and_asks_nothing(lab):
    before = [d["id"] for d in lab.droplets()]
    started = time.monotonic()
    out = lab.fab("provision", "--hosts", str(lab.inventory(3)))  # no --yes, no terminal: nothing to confirm
    print(f"re-run: {time.monotonic() - started:.1f} s")
    assert out.returncode == 0, out.stderr
    assert [d["id"] for d in lab.droplets()] == before
    assert "3 of 3 hosts converged (0 changed)" in out.stdout
    assert "create" not in out.stdout
    status = lab.fab("status", "--hosts", str(lab.inventory(3)), "--json")
    assert [s["state"] for h in json.loads(status.stdout) for s in h["seats"]] == ["running"] * 6


def test_a_smaller_count_destroys_the_highest_numbered_only_after_confirmation(lab):
    inv = lab.inventory(2)
    refused = lab.fab("provision", "--hosts", str(inv))
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert "DESTROY 1: dolab-03" in refused.stdout
    assert len(lab.droplets()) == 3
    out = lab.fab("provision", "--hosts", str(inv), "--yes")
    assert out.returncode == 0, out.stderr
    assert [d["name"] for d in lab.droplets()] == ["dolab-01", "dolab-02"]
    assert len(lab.containers()) == 2
    assert "2 of 2 hosts converged" in out.stdout


def test_429_and_500_storms_are_survived_while_a_droplet_is_added(lab):
    api = lab.standin
    api.delay = 0.05
    api.inject(
        Fault(429, times=8, every=2, retry_after=1),          # every other request rate limited, 8 times
        Fault(500, times=6, every=3),                          # then a 500 on every third
        Fault(503, times=1, method="POST", path="/v2/droplets", after=True),  # the create answer is lost
        Fault(429, times=3, path="/v2/droplets", retry_after=None),  # 429 with ratelimit-reset only
    )
    out = lab.fab("provision", "--hosts", str(lab.inventory(3)), "--yes")
    assert out.returncode == 0, out.stderr
    hits = [(f.status, f.path, f.hits, f.times) for f in api.faults]
    print(f"faults (status, path, hits, of): {hits}")
    assert all(f.hits >= 1 for f in api.faults), hits
    assert "rate limited; waiting" in out.stderr and "may or may not have taken effect" in out.stderr
    assert [d["name"] for d in lab.droplets()] == ["dolab-01", "dolab-02", "dolab-03"]  # no duplicate dolab-03
    assert len(lab.containers()) == 3
    assert "3 of 3 hosts converged (1 changed)" in out.stdout


def test_teardown_with_the_state_file_deleted_still_destroys_all(lab):
    (lab.state / "dolab.json").unlink()
    inv = lab.inventory(3)
    out = lab.fab("teardown", "--hosts", str(inv), "--yes")
    assert out.returncode == 0, out.stderr
    assert "destroy 3 droplets tagged fleet:dolab" in out.stdout
    assert "the API lists no droplet tagged fleet:dolab" in out.stdout
    assert lab.droplets() == [] and lab.containers() == []
    # without the state, fleet cannot know it registered the key: it stays, and says so
    assert "none deleted" in out.stdout
    assert len(lab.standin.keys()) == 1


# --- other fleets -------------------------------------------------------------------------------


def test_killed_right_after_the_create_call_then_teardown_leaves_nothing(standin, built_images, tmp_path_factory):
    fleet = Fleet(standin, tmp_path_factory.mktemp("dokill"), "dokill", keypair(tmp_path_factory, "dokill-key"),
                  built_images["jupyter"])
    inv = fleet.inventory(3)
    env = {**os.environ, "FLEET_STATE_DIR": str(fleet.state), "PYTHONPATH": str(ROOT), **standin.env()}
    proc = subprocess.Popen([*FAB, "--search-root", str(ROOT), "provision", "--hosts", str(inv), "--yes"],
                            cwd=fleet.work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    standin.on_create = lambda created: os.kill(proc.pid, signal.SIGKILL)  # right after the answer was written
    assert proc.wait(timeout=120) == -signal.SIGKILL
    assert [d["name"] for d in fleet.droplets()] == ["dokill-01", "dokill-02", "dokill-03"]
    recorded = fleet.state_data().get("digitalocean", {}).get("droplets", {})
    print(f"ids in the state when killed: {len(recorded)} of 3")
    out = fleet.fab("teardown", "--hosts", str(inv), "--yes")
    assert out.returncode == 0, out.stderr
    assert fleet.droplets() == []
    assert fleet.containers() == []
    assert "Deleted the SSH key fleet had registered" in out.stdout  # registered before the create, then deleted
    assert fleet.state_data()["digitalocean"] == {"droplets": {}, "ssh_key": None}


def test_droplets_that_never_become_usable_are_destroyed_and_reported_the_others_go_on(
        standin, built_images, tmp_path_factory, lab):
    fleet = Fleet(standin, tmp_path_factory.mktemp("dostuck"), "dostuck", lab.pub, built_images["jupyter"])
    standin.never_active = {"dostuck-02"}
    standin.no_ssh = {"dostuck-03"}
    inv = fleet.inventory(3, droplet_timeout=25)
    out = fleet.fab("provision", "--hosts", str(inv), "--yes")
    assert out.returncode == 1
    rows = {line.split()[0]: line for line in out.stdout.splitlines() if line.startswith("dostuck-")}
    assert "FAILED: droplet dostuck-02" in rows["dostuck-02"] and "did not become usable within 25 s (last seen: new)" \
        in rows["dostuck-02"] and rows["dostuck-02"].endswith("destroyed")
    assert "FAILED: droplet dostuck-03" in rows["dostuck-03"] and "SSH did not answer" in rows["dostuck-03"] \
        and rows["dostuck-03"].endswith("destroyed")
    survivor, = fleet.droplets()
    assert survivor["name"] == "dostuck-01" and len(fleet.containers()) == 1
    assert running_seats(out.stdout, survivor["networks"]["v4"][0]["ip_address"]) == ["dostuck-nb-1", "dostuck-nb-2"]
    assert "1 of 3 hosts converged (1 changed), 2 failed" in out.stdout
    teardown = fleet.fab("teardown", "--hosts", str(inv), "--yes")
    assert teardown.returncode == 0 and fleet.droplets() == [] and fleet.containers() == []
    assert "was in the account before fleet; left there" in teardown.stdout  # the key belongs to fleet dolab's run


def test_bad_input_exits_2_before_any_request(standin, tmp_path, lab):
    token = "dop_v1_" + "ab" * 32
    requests = len(standin.journal)
    text = INVENTORY.format(name="dobad", count=1, size=SIZE, pub=lab.pub, image=lab.image, droplet_timeout=30)
    fleet = Fleet(standin, tmp_path, "dobad", lab.pub, lab.image)
    with_token = tmp_path / "token.yml"
    with_token.write_text(text.replace("  count: 1\n", f"  count: 1\n  token: {token}\n"))
    out = fleet.fab("provision", "--hosts", str(with_token))
    assert out.returncode == 2 and f"{with_token}:4: digitalocean.token: never write the API token" in out.stderr
    assert token not in out.stdout + out.stderr
    plain = tmp_path / "plain.yml"
    plain.write_text(text)
    out = fleet.fab("provision", "--hosts", str(plain), env={"DIGITALOCEAN_ACCESS_TOKEN": ""})
    assert out.returncode == 2 and "DIGITALOCEAN_ACCESS_TOKEN is not set" in out.stderr
    big = tmp_path / "big.yml"
    big.write_text(text.replace(f"size: {SIZE}", "size: s-4vcpu-8gb").replace("region: ams3", "region: sfo3"))
    out = fleet.fab("provision", "--hosts", str(big), "--yes")
    assert out.returncode == 2, out.stderr
    assert f"{big}:5: digitalocean.size: size 's-4vcpu-8gb' is not offered in region 'sfo3'" in out.stderr
    assert [r for r in standin.journal[requests:] if r[0] == "POST"] == []  # nothing was created
