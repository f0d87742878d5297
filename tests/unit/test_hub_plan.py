"""mode: hub as plain data: the inventory's hub section, the swarm's argv, a node's facts, the manager's and a
worker's steps."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from fleet import facts as facts_mod
from fleet import inventory
from fleet.commands import swarm
from fleet.errors import InputError
from fleet.hub import facts as hub_facts
from fleet.hub import passwords
from fleet.hub import plan as hub_plan
from fleet.hub.config import HubSettings
from fleet.inventory.hub import parse_duration
from fleet.steps import Run, Upload

PROBE = (Path(__file__).parent / "probe" / "debian12-docker-two-seats.txt").read_text()
HASH = passwords.hash_password("0123456789abcdef0123456789abcdef", b"0123456789abcdef")
LAB = """\
name: hubt
mode: hub
hosts: [192.0.2.10, 192.0.2.11, 192.0.2.12]
hub: {{admin: teacher, port: 8443{extra}}}
roster: [Ada Lovelace, Bob Builder]
services:
  - {{name: notebook, kind: jupyter, image: quay.io/jupyter/scipy-notebook:2026-09-01, memory: 1g, cpus: 0.5}}
"""


def load(tmp_path, text: str = LAB, extra: str = ", idle_timeout: 40m"):
    p = tmp_path / "lab.yml"
    p.write_text(text.format(extra=extra))
    return inventory.load(p)


def test_the_hub_section_and_its_checks(tmp_path):
    inv = load(tmp_path)
    assert inv.model.mode == "hub" and inv.model.hub.idle_seconds == 2400 and inv.model.hub.port == 8443
    assert inv.roster.names == ("Ada Lovelace", "Bob Builder") or list(inv.roster.names) == ["Ada Lovelace", "Bob Builder"]
    assert [parse_duration(x) for x in ("30m", "2h", "90s", "45", 0)] == [1800, 7200, 90, 45, 0]
    with pytest.raises(InputError) as e:
        load(tmp_path, extra=", idle_timeout: soon")
    assert "hub.idle_timeout" in str(e.value) and "30m" in str(e.value)
    two = LAB.replace("services:\n", "services:\n  - {{name: r, kind: rstudio, image: rocker/rstudio:4.6.1}}\n")
    with pytest.raises(InputError) as e:
        load(tmp_path, two)
    assert "exactly one service, of kind jupyter" in str(e.value)
    # no seats in hub mode: more students than "seats" is fine
    many = LAB.replace("roster: [Ada Lovelace, Bob Builder]", "roster: [" + ", ".join(f"S{i}" for i in range(20)) + "]")
    assert len(load(tmp_path, many).roster.names) == 20


def test_the_manager_is_the_named_host_or_the_first(tmp_path):
    inv = load(tmp_path)
    assert hub_plan.manager_of(inv, inv.hosts).address == "192.0.2.10"
    inv = load(tmp_path, extra=", idle_timeout: 40m, manager: 192.0.2.12")
    assert hub_plan.manager_of(inv, inv.hosts).address == "192.0.2.12"
    inv = load(tmp_path, extra=", idle_timeout: 40m, manager: 192.0.2.99")
    with pytest.raises(InputError, match="not one of the fleet's hosts"):
        hub_plan.manager_of(inv, inv.hosts)


def test_the_join_token_never_reaches_argv():
    body = swarm.join_body("SWMTKN-1-secret", "192.0.2.10", "192.0.2.11")
    assert json.loads(body) == {"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": "192.0.2.11",
                                "RemoteAddrs": ["192.0.2.10:2377"], "JoinToken": "SWMTKN-1-secret"}
    argv = swarm.join("/etc/fleet/lab/swarm-join.json")
    assert "SWMTKN" not in " ".join(argv) and "--unix-socket /var/run/docker.sock" in argv[2]
    assert 'rm -f "$body"' in argv[2]  # the file goes whatever happens
    assert swarm.init("192.0.2.10") == ("docker", "swarm", "init", "--advertise-addr", "192.0.2.10")
    assert swarm.overlay_create("n", "lab", "10.0.0.0/22", "10.0.0.1", "10.0.2.0/23") == (
        "docker", "network", "create", "--driver", "overlay", "--attachable", "--label", "fleet.name=lab",
        "--subnet", "10.0.0.0/22", "--gateway", "10.0.0.1", "--ip-range", "10.0.2.0/23", "n")


def test_the_node_probe_parses(tmp_path):
    node = hub_facts.parse("--- swarm\nactive true abc123\n--- services\nhubt-user-ada ada\nhubt-user-bob bob\n"
                           "--- passwords\n" + "f" * 64 + "\n--- network\nhubt-hubnet\n--- end\n")
    assert node.active and node.manager and node.node_id == "abc123"
    assert node.services == {"hubt-user-ada": "ada", "hubt-user-bob": "bob"} and node.passwords == "f" * 64
    assert node.network
    assert hub_facts.parse("--- swarm\n--- services\n--- passwords\n--- end\n") == hub_facts.SwarmFacts()
    with pytest.raises(ValueError):
        hub_facts.parse("--- swarm\ninactive false\n")
    out = subprocess.run(["sh", "-c", hub_facts.PROBE, "sh", "hubt", str(tmp_path / "none"), "n"], capture_output=True,
                         text=True, timeout=60)
    assert hub_facts.parse(out.stdout).passwords == ""  # a real sh: no hash file yet


def settings(tmp_path) -> tuple:
    inv = load(tmp_path)
    s = hub_plan.settings(inv, ["ada-lovelace", "bob-builder"], "teacher", "https://192.0.2.10:8443/", workers=True)
    return inv, s


def test_settings_come_from_the_one_service_and_the_hub_section(tmp_path):
    inv, s = settings(tmp_path)
    assert isinstance(s, HubSettings)
    assert (s.mem_limit, s.memory_reserved, s.cpu_limit, s.cpus_reserved) == (1 << 30, 1 << 30, 0.5, 0.5)
    assert s.idle_timeout == 2400 and s.placement == ("node.role==worker",) and s.default_url == "/lab"
    assert hub_plan.settings(inv, [], "", "https://h:1/", workers=False).placement == ()


def test_a_fresh_manager_forms_the_swarm_then_runs_the_hub_and_its_proxy(tmp_path):
    inv, s = settings(tmp_path)
    f = dataclasses.replace(facts_mod.parse(PROBE), containers={}, networks=frozenset())
    wanted = [hub_plan.hub_container(inv, s)]
    passwords = hub_plan.passwords_file("hubt", {"ada-lovelace": HASH})
    steps = hub_plan.manager_steps(inv, inv.hosts[0], f, hub_facts.SwarmFacts(), s, wanted, {}, passwords)
    titles = [x.title for x in steps]
    assert titles[:3] == ["form the swarm on 192.0.2.10 (docker swarm init)", "create the overlay network hubt-hubnet",
                          "write the hub's password hashes"]
    assert isinstance(steps[2], Upload) and steps[2].mode == 0o600 and steps[2].path == "/etc/fleet/hubt/hub/passwords"
    run = steps[-1]
    assert isinstance(run, Run) and run.argv[:2] == ("docker", "run")
    assert run.argv[-3:] == ("jupyterhub", "-f", "/srv/fleet/jupyterhub_config.py")
    assert "--publish" not in run.argv and "/var/run/docker.sock:/var/run/docker.sock" in run.argv
    assert any(x.title == "write the hub's jupyterhub_config.py" for x in steps)


def test_a_converged_manager_gets_nothing_and_leavers_lose_their_servers(tmp_path):
    inv, s = settings(tmp_path)
    wanted = [hub_plan.hub_container(inv, s)]
    passwords = hub_plan.passwords_file("hubt", {"ada-lovelace": HASH})
    base = facts_mod.parse(PROBE)
    running = facts_mod.Container(s.hub_name, "running", "sha256:x", 0, {"fleet.spec": wanted[0].spec})
    f = dataclasses.replace(base, containers={s.hub_name: running}, networks=frozenset({s.network}))
    node = hub_facts.SwarmFacts("active", True, "n1", {s.service_name("ada-lovelace"): "ada-lovelace"},
                                hashlib.sha256(passwords.content).hexdigest(), network=True)
    assert hub_plan.manager_steps(inv, inv.hosts[0], f, node, s, wanted, {}, passwords) == []
    node = dataclasses.replace(node, services={**node.services, "hubt-user-carol": "carol"})
    (step,) = hub_plan.manager_steps(inv, inv.hosts[0], f, node, s, wanted, {}, passwords)
    assert step.argv == ("docker", "service", "rm", "hubt-user-carol")


def test_a_worker_joins_once_with_the_token_in_a_file(tmp_path):
    inv = load(tmp_path)
    upload, join = hub_plan.worker_steps(inv, hub_facts.SwarmFacts(), "192.0.2.10", "192.0.2.11", "SWMTKN-1-x")
    assert upload.mode == 0o600 and b"SWMTKN-1-x" in upload.content and "SWMTKN" not in " ".join(join.argv)
    assert "SWMTKN" not in json.dumps(upload.describe())
    assert hub_plan.worker_steps(inv, hub_facts.SwarmFacts("active"), "192.0.2.10", "192.0.2.11", "t") == []


def test_teardown_of_a_node(tmp_path):
    inv = load(tmp_path)
    f = facts_mod.parse(PROBE)
    worker = [x.title for x in hub_plan.teardown_steps(inv, f, manager=False, keep_work=False)]
    assert worker[-3:] == ["remove the students' files (their volumes)", "remove the files fleet wrote", "leave the swarm"]
    kept = [x.title for x in hub_plan.teardown_steps(inv, f, manager=True, keep_work=True)]
    assert "remove the students' files (their volumes)" not in kept and kept[-1] == "leave the swarm"
    assert "remove the overlay network" in kept
