"""Plans as data, one folder a case (as pyinfra's tests/operations): facts in, the exact steps out.

Each folder holds ``inventory.yml``, ``case.json`` (which real probe capture
of tests/unit/probe the facts come from, and how the case changes them:
another os-release of tests/unit/os-release, a fresh host without Docker,
the seats' secrets, this computer's image ids, teardown instead of
provision) and ``expected.json``: every step as ``Step.describe()`` gives
it, the commands' argv whole, secrets never. ``FLEET_UPDATE_PLANS=1 pytest
tests/unit/plan`` rewrites the expected files after a deliberate change;
read the diff before committing it.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from fleet import desired, distro, facts, inventory, plan

HERE = Path(__file__).parent
UNIT = HERE.parent
CASES = sorted(p for p in HERE.iterdir() if (p / "inventory.yml").exists())


def facts_for(spec: dict) -> facts.Facts:
    f = facts.parse((UNIT / "probe" / spec["probe"]).read_text())
    if "os_release" in spec:
        f = dataclasses.replace(f, os_release=distro.parse_os_release((UNIT / "os-release" / spec["os_release"]).read_text()))
    if spec.get("fresh"):
        f = dataclasses.replace(f, docker_installed=False, docker_running=False, containers={}, networks=frozenset(),
                                images={k: "" for k in f.images}, ports_in_use=frozenset({22}), proxy_ca="")
    return f


def steps_of(case: Path) -> list[dict]:
    spec = json.loads((case / "case.json").read_text())
    inv = inventory.load(case / "inventory.yml")
    f = facts_for(spec)
    if spec.get("teardown"):
        steps = plan.teardown(inv, f, keep_work=spec.get("keep_work", False))
    else:
        host = inv.hosts[0]
        steps = plan.plan(inv, f, desired.for_host(inv, host, spec["secrets"]), spec.get("local_ids", {}),
                          ssh_port=host.port)
    return [s.describe() for s in steps]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_plan(case: Path):
    got = steps_of(case)
    expected = case / "expected.json"
    if os.environ.get("FLEET_UPDATE_PLANS"):
        expected.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    assert got == json.loads(expected.read_text())
    spec = json.loads((case / "case.json").read_text())
    text = expected.read_text()
    assert not any(secret in text for secret in spec.get("secrets", {}).values())  # plans never show a secret


def test_there_are_cases():
    assert len(CASES) >= 5
