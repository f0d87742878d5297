"""plan(facts, seats) on plain data: facts parsed from a real probe's output."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fleet import desired, facts, inventory, plan
from fleet.errors import HostError, UnsupportedOS
from fleet.steps import PushImage, Run, Upload

HERE = Path(__file__).parent
PROBE = (HERE / "probe" / "debian12-docker-two-seats.txt").read_text()
IMAGE_ID = "sha256:c25f90262dbbce642d7d66bded3b35e5042a6673bc71c7078a939f836a12bc2b"
SECRETS = {"itest-nb-1": "t1", "itest-nb-2": "t2"}

INVENTORY = """\
name: itest
hosts: [172.17.0.7]
docker: {source: distro}
tls: off
services:
  - name: nb
    image: fleet-jupyter:test
    publish: 8000
    seats: 2
    memory: 256m
    cpus: 0.5
    env: {TZ: Europe/Amsterdam}
    push: true
"""


@pytest.fixture
def inv(tmp_path):
    p = tmp_path / "lab.yml"
    p.write_text(INVENTORY)
    return inventory.load(p)


def wanted(inv, secrets=SECRETS):
    return desired.for_host(inv, inv.hosts[0], secrets)


def matching(f: facts.Facts, inv, secrets=SECRETS) -> facts.Facts:
    """The captured facts as if the host ran exactly what ``inv`` wants (the capture had other specs)."""
    template = f.containers["itest-nb-1"]
    images = {**f.images, **{w.image: f"sha256:{w.image}" for w in wanted(inv) if w.image not in f.images}}
    containers = {w.name: dataclasses.replace(template, name=w.name, labels={"fleet.name": "itest", "fleet.spec": w.spec},
                                              host_ports=w.host_ports, image_id=images[w.image])
                  for w in wanted(inv, secrets)}
    return dataclasses.replace(f, containers=containers, networks=frozenset({"itest-seats"}), images=images)


@pytest.fixture
def converged(inv):
    return matching(facts.parse(PROBE), inv)


def fresh(f: facts.Facts) -> facts.Facts:
    return dataclasses.replace(f, docker_installed=False, docker_running=False, containers={}, networks=frozenset(),
                               images={"fleet-jupyter:test": ""}, ports_in_use=frozenset({22}))


def titles(steps):
    return [s.title for s in steps]


def test_probe_output_parses():
    f = facts.parse(PROBE)
    assert f.os_release["ID"] == "debian" and f.distro().codename == "bookworm"
    assert (f.arch, f.systemd, f.cpus, f.package_manager, f.cloud_init) == ("x86_64", True, 2, "apt-get", "absent")
    assert f.memory_kb == 24684084
    assert f.docker_running and f.docker_version == "20.10.24+dfsg1"
    assert {22, 8300, 8301}.issubset(f.ports_in_use)
    assert sorted(f.containers) == ["itest-nb-1", "itest-nb-2"]
    assert f.containers["itest-nb-1"].labels["fleet.seat"] == "1"
    assert f.images == {"fleet-jupyter:test": IMAGE_ID, "nope:1": ""}


def test_probe_finds_the_proxy_and_reads_its_authority_from_the_data_volume():
    f = facts.parse((HERE / "probe" / "debian12-docker-tls-proxy.txt").read_text())
    assert sorted(f.containers) == ["itls-nb-1", "itls-nb-2", "itls-proxy"]
    assert f.containers["itls-proxy"].host_ports == (8100, 8101)
    assert f.networks == {"itls-seats"}
    assert f.images["fleet-caddy:test"].startswith("sha256:") and f.images["fleet-jupyter:test"] == IMAGE_ID
    assert f.proxy_ca.startswith("-----BEGIN CERTIFICATE-----") and f.proxy_ca.endswith("-----END CERTIFICATE-----\n")


def test_engine_version_is_only_there_when_asked_for():
    f = facts.parse(PROBE.replace("--- docker-version\n20.10.24+dfsg1\n", "--- docker-version\n"))
    assert f.docker_running and f.docker_version == "" and f.docker_state == "Docker running"
    stopped = facts.parse(PROBE.replace("--- engine\nanswers\n", "--- engine\n"))
    assert not stopped.docker_running and stopped.docker_state == "Docker installed, not running"


@pytest.mark.parametrize("reference, listed", [
    ("fleet-jupyter:test", "fleet-jupyter:test"),
    ("ubuntu", "ubuntu:latest"),
    ("docker.io/library/ubuntu:24.04", "ubuntu:24.04"),
    ("library/ubuntu", "ubuntu:latest"),
    ("docker.io/rocker/rstudio:4.4", "rocker/rstudio:4.4"),
    ("quay.io/jupyter/scipy-notebook:2025-06-02", "quay.io/jupyter/scipy-notebook:2025-06-02"),
    ("localhost:5000/seat", "localhost:5000/seat:latest"),
    ("quay.io/jupyter/base-notebook:2025@sha256:abc", "quay.io/jupyter/base-notebook@sha256:abc"),
    ("sha256:abc", "sha256:abc"),
])
def test_image_references_are_matched_as_docker_lists_them(reference, listed):
    assert facts.familiar(reference) == listed


def test_cut_short_probe_is_an_error():
    with pytest.raises(ValueError, match="cut short"):
        facts.parse(PROBE.split("--- objects")[0])


def test_converged_host_gets_no_steps(inv, converged):
    assert plan.plan(inv, converged, wanted(inv), {"fleet-jupyter:test": IMAGE_ID}) == []


def test_fresh_host_installs_docker_pushes_and_runs_seats(inv, converged):
    steps = plan.plan(inv, fresh(converged), wanted(inv), {"fleet-jupyter:test": IMAGE_ID})
    runs = [s.argv for s in steps if isinstance(s, Run)]
    assert any("docker.io" in argv for argv in runs)
    assert isinstance(steps[-6], PushImage) and steps[-6].image == "fleet-jupyter:test"
    assert steps[-5].argv == ("docker", "network", "create", "--label", "fleet.name=itest", "itest-seats")
    assert titles(steps[-4:]) == ["write env file of itest-nb-1", "run itest-nb-1 on port 8000",
                                  "write env file of itest-nb-2", "run itest-nb-2 on port 8001"]
    upload = steps[-4]
    assert isinstance(upload, Upload) and upload.mode == 0o600
    assert upload.content == b"TZ=Europe/Amsterdam\nJUPYTER_TOKEN=t1\n"
    assert "t1" not in repr(steps) and "t1" not in str(upload.describe())


def test_new_local_image_is_pushed_and_seats_replaced(inv, converged):
    steps = plan.plan(inv, converged, wanted(inv), {"fleet-jupyter:test": "sha256:new"})
    assert titles(steps) == [
        "send image fleet-jupyter:test from this computer",
        "remove itest-nb-1 to replace it (spec changed)", "write env file of itest-nb-1",
        "run itest-nb-1 on port 8000",
        "remove itest-nb-2 to replace it (spec changed)", "write env file of itest-nb-2",
        "run itest-nb-2 on port 8001",
    ]


def test_changed_secret_replaces_only_that_seat(inv, converged):
    steps = plan.plan(inv, converged, wanted(inv, {"itest-nb-1": "t1", "itest-nb-2": "new"}),
                      {"fleet-jupyter:test": IMAGE_ID})
    assert titles(steps) == ["remove itest-nb-2 to replace it (spec changed)",
                             "write env file of itest-nb-2", "run itest-nb-2 on port 8001"]


def test_stopped_seat_is_started(inv, converged):
    c = dict(converged.containers)
    c["itest-nb-2"] = dataclasses.replace(c["itest-nb-2"], state="exited")
    steps = plan.plan(inv, dataclasses.replace(converged, containers=c), wanted(inv), {"fleet-jupyter:test": IMAGE_ID})
    assert [(s.title, s.argv) for s in steps] == [
        ("start itest-nb-2 (was exited)", ("docker", "start", "itest-nb-2"))]


def test_seats_no_longer_wanted_are_removed_first(inv, converged, tmp_path):
    p = tmp_path / "one.yml"
    p.write_text(INVENTORY.replace("seats: 2", "seats: 1"))
    one = inventory.load(p)
    steps = plan.plan(one, converged, wanted(one), {"fleet-jupyter:test": IMAGE_ID})
    assert [s.argv for s in steps] == [
        ("docker", "rm", "--force", "itest-nb-2"),
        ("rm", "-f", "--", "/etc/fleet/itest/itest-nb-2.env"),
    ]


def test_pull_only_when_missing(inv, converged, tmp_path):
    p = tmp_path / "pull.yml"
    p.write_text(INVENTORY.replace("push: true", "push: false"))
    pulled = inventory.load(p)
    assert plan.plan(pulled, converged, wanted(pulled), {}) == []
    missing = dataclasses.replace(fresh(converged), docker_installed=True, docker_running=True,
                                  networks=frozenset({"itest-seats"}))
    steps = plan.plan(pulled, missing, wanted(pulled), {})
    assert steps[0].argv == ("docker", "pull", "--quiet", "fleet-jupyter:test")


def test_installed_but_stopped_docker_is_started(inv, converged):
    stopped = dataclasses.replace(converged, docker_running=False)
    steps = plan.plan(inv, stopped, wanted(inv), {"fleet-jupyter:test": IMAGE_ID})
    assert steps[0].title == "finish any interrupted package installation"  # a cut-off dpkg run is finished first
    assert steps[1].argv == ("systemctl", "enable", "--now", "docker")
    assert steps[2].title.startswith("wait up to") and len(steps) == 3


def test_port_taken_by_another_program(inv, converged):
    busy = dataclasses.replace(fresh(converged), ports_in_use=frozenset({22, 8001}))
    with pytest.raises(HostError, match=r"port 8001 \(for itest-nb-2\) is already used by another program"):
        plan.plan(inv, busy, wanted(inv), {"fleet-jupyter:test": IMAGE_ID})


def test_cpuset_beyond_the_hosts_cpus(inv, converged, tmp_path):
    p = tmp_path / "cpu.yml"
    p.write_text(INVENTORY.replace("cpus: 0.5", 'cpuset: "0-3"'))
    big = inventory.load(p)
    with pytest.raises(HostError, match="names CPU 3, but this host has 2 CPUs"):
        plan.plan(big, converged, wanted(big), {"fleet-jupyter:test": IMAGE_ID})


def test_unsupported_os_is_a_host_error(inv, converged):
    alpine = dataclasses.replace(fresh(converged), os_release={"ID": "alpine", "PRETTY_NAME": "Alpine Linux v3.20"})
    with pytest.raises(UnsupportedOS, match="Alpine Linux v3.20"):
        plan.plan(inv, alpine, wanted(inv), {"fleet-jupyter:test": IMAGE_ID})


@pytest.fixture
def inv_tls(tmp_path):
    p = tmp_path / "tls.yml"
    p.write_text(INVENTORY.replace("tls: off\n", "proxy: {image: fleet-caddy:test, push: true}\n"))
    return inventory.load(p)


def test_tls_fresh_host_gets_network_seats_then_proxy(inv_tls, converged):
    ids = {"fleet-jupyter:test": IMAGE_ID, "fleet-caddy:test": "sha256:caddy"}
    steps = plan.plan(inv_tls, fresh(converged), wanted(inv_tls), ids)
    tail = titles(steps)[-9:]
    assert tail == [
        "send image fleet-jupyter:test from this computer", "send image fleet-caddy:test from this computer",
        "create the private seat network itest-seats",
        "write env file of itest-nb-1", "run itest-nb-1", "write env file of itest-nb-2", "run itest-nb-2",
        "write the proxy's Caddyfile", "run itest-proxy on ports 8000, 8001",
    ]
    caddyfile = steps[-2]
    assert isinstance(caddyfile, Upload) and caddyfile.path == "/etc/fleet/itest/Caddyfile"
    assert b"reverse_proxy itest-nb-2:8888" in caddyfile.content


def test_switching_tls_on_replaces_seats_before_the_proxy_takes_their_ports(inv, inv_tls, converged):
    ids = {"fleet-jupyter:test": IMAGE_ID, "fleet-caddy:test": "sha256:caddy"}
    on = dataclasses.replace(converged, images={**converged.images, "fleet-caddy:test": "sha256:caddy"})
    steps = plan.plan(inv_tls, on, wanted(inv_tls), ids)
    assert titles(steps) == [
        "remove itest-nb-1 to replace it (spec changed)", "write env file of itest-nb-1", "run itest-nb-1",
        "remove itest-nb-2 to replace it (spec changed)", "write env file of itest-nb-2", "run itest-nb-2",
        "write the proxy's Caddyfile", "run itest-proxy on ports 8000, 8001",
    ]
    back = plan.plan(inv, matching(facts.parse(PROBE), inv_tls), wanted(inv), ids)
    assert titles(back)[:2] == ["remove itest-proxy (no longer in the inventory)", "remove env file of itest-proxy"]


def test_tls_converged_host_gets_no_steps(inv_tls):
    f = matching(facts.parse(PROBE), inv_tls)
    ids = {"fleet-jupyter:test": IMAGE_ID, "fleet-caddy:test": "sha256:fleet-caddy:test"}
    assert plan.plan(inv_tls, f, wanted(inv_tls), ids) == []


@pytest.fixture
def inv_fw(tmp_path):
    p = tmp_path / "fw.yml"
    p.write_text(INVENTORY + "firewall: true\n")
    return inventory.load(p)


def test_firewall_opens_ssh_and_seat_ports_once(inv_fw, converged):
    ids = {"fleet-jupyter:test": IMAGE_ID}
    steps = plan.plan(inv_fw, converged, wanted(inv_fw), ids, ssh_port=2222)
    assert titles(steps) == ["install ufw", "firewall (ufw): allow SSH (2222) and ports 8000, 8001, deny the rest",
                             "record the ports fleet opened"]
    assert steps[1].argv[4:] == ("itest", "2222", "", "8000", "8001")
    done = dataclasses.replace(converged, firewall_tool="ufw", firewall_active=True, firewall_ports=(8000, 8001))
    assert plan.plan(inv_fw, done, wanted(inv_fw), ids, ssh_port=2222) == []
    # a seat fewer: the old port list goes along, so the script closes 8001
    old = dataclasses.replace(done, firewall_ports=(8000, 8001, 8002))
    assert plan.plan(inv_fw, old, wanted(inv_fw), ids)[0].argv[4:] == ("itest", "22", "8000 8001 8002", "8000", "8001")
    rhel = dataclasses.replace(converged, package_manager="dnf")
    assert titles(plan.plan(inv_fw, rhel, wanted(inv_fw), ids))[:2] == [
        "install firewalld", "firewall (firewalld): allow SSH (22) and ports 8000, 8001, deny the rest"]
