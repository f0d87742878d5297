"""What an inventory may leave out, what fleet fills in, and every problem of a file at once, in line order."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fleet import inventory, kinds, starter
from fleet.commands.containers import seat_args
from fleet.errors import InputErrors
from fleet.inventory.defaults import first_free_block
from fleet.seats import expand
from tests.unit.conftest import load_error

ROOT = Path(__file__).resolve().parents[2]

SMALLEST = """\
name: lab
hosts: [192.0.2.10]
services:
  - {name: notebook, kind: jupyter, image: quay.io/jupyter/scipy-notebook, seats: 3}
"""


def defaults(inv: inventory.Inventory) -> dict[str, str]:
    return {str(d).split(" = ")[0]: str(d).split(" = ")[1] for d in inv.defaults}


def test_the_smallest_inventory_a_teacher_writes_is_complete(write):
    inv = inventory.load(write(SMALLEST))
    svc = inv.services[0]
    assert (svc.image, svc.container_port, svc.publish, svc.seats) == ("quay.io/jupyter/scipy-notebook", 8888, 8000, 3)
    assert (svc.memory, svc.cpus) == (kinds.SEAT_MEMORY, kinds.SEAT_CPUS)
    got = defaults(inv)
    assert got["services[0].publish"] == "8000" and got["services[0].port"] == "8888"
    assert got["services[0].memory"] == "2g" and got["services[0].cpus"] == "1"
    assert "services[0].image" not in got and "services[0].seats" not in got  # written in the file
    assert list(got)[:2] == ["services[0].port", "services[0].publish"]  # the services' first


def test_each_kind_brings_its_image_port_and_limits(write):
    inv = inventory.load(write("name: lab\nhosts: [192.0.2.10]\nservices:\n  - {name: nb}\n  - {name: r, kind: rstudio}\n"))
    nb, r = inv.services
    assert (nb.image, nb.container_port, nb.publish) == (kinds.JUPYTER_IMAGE, 8888, 8000)
    assert (r.image, r.container_port, r.publish) == (kinds.RSTUDIO_IMAGE, 8787, 8001)
    assert defaults(inv)["services[1].image"] == "rocker/rstudio:4.6.1"
    assert ":" in kinds.JUPYTER_IMAGE and not kinds.JUPYTER_IMAGE.endswith(":latest")  # pinned


def test_limits_are_off_only_when_asked(write):
    text = ("name: lab\nhosts: [192.0.2.10]\nservices:\n  - {name: a, memory: none, cpus: null}\n"
            "  - {name: b, cpuset: '0'}\n  - {name: c, kind: generic, image: x, port: 80, secret_env: T}\n")
    inv = inventory.load(write(text))
    a, b, c = inv.services
    assert (a.memory, a.cpus) == (None, None)
    assert (b.memory, b.cpus, b.cpuset) == ("2g", None, "0")  # a CPU set is the teacher's CPU limit
    assert (c.memory, c.cpus) == (None, None)  # generic: fleet cannot know what it needs
    argv = {s.service.name: seat_args(s, "lab-seats", publish=False) for s in expand(inv)}
    assert "--memory" not in argv["a"] and "--cpus" not in argv["a"]
    assert argv["b"][argv["b"].index("--memory") + 1] == str(2 * 1024**3) and "--cpus" not in argv["b"]


@pytest.mark.parametrize("seats,taken,start,expect", [
    (1, [], 8000, 8000),
    (3, [8001], 8000, 8002),
    (2, [8000, 8001, 8003], 8000, 8004),
    (2, range(8000, 8100), 8000, 8100),
    (2, [65535], 65530, 65530),
    (3, [65534], 65532, None),
])
def test_first_free_block(seats, taken, start, expect):
    assert first_free_block(seats, taken, start) == expect


def test_publish_defaults_collide_with_nothing(write):
    text = """\
name: lab
ssh: {port: 8003}
hosts: [192.0.2.10, {address: 192.0.2.11, port: 8010}]
services:
  - {name: a, seats: 3}
  - {name: b, seats: 2, publish: 8004}
  - {name: c, seats: 4}
"""
    a, b, c = inventory.load(write(text)).services
    assert [list(s.host_ports) for s in (a, b, c)] == [[8000, 8001, 8002], [8004, 8005], [8006, 8007, 8008, 8009]]
    # 8003 and 8010 are SSH ports; b's own block is placed first


def port_block(text: str) -> list[list[int]]:
    return [list(s.host_ports) for s in inventory.load(text).services]


def test_publish_default_skips_port_80_only_when_lets_encrypt_needs_it(write):
    text = "name: lab\nhosts: [192.0.2.10]\ntls: sslip\nservices:\n  - {name: a, publish: 79, seats: 1}\n  - {name: b}\n"
    assert port_block(write(text)) == [[79], [8000]]


# --- every problem at once -----------------------------------------------------------


def test_a_typo_of_a_required_key_is_reported_as_the_typo_only(write):
    e = load_error(write, SMALLEST.replace("services:", "servces:"))
    assert [(p.line, p.field) for p in e.problems] == [(3, "servces")], str(e)
    assert "unknown field `servces`; did you mean `services`?" in str(e)
    assert "this field is required" not in str(e)


def test_a_typo_in_a_service_hides_the_missing_field_it_means(write):
    e = load_error(write, SMALLEST.replace("name: notebook", "nmae: notebook"))
    assert [(p.line, p.field) for p in e.problems] == [(4, "services[0].nmae")]
    assert "did you mean `name`?" in str(e)


def test_a_missing_field_without_a_near_miss_is_still_required(write):
    e = load_error(write, SMALLEST.replace("services:", "extras:"))
    assert [p.field for p in e.problems] == ["extras", "services"] or [p.field for p in e.problems] == ["services", "extras"]
    assert "this field is required" in str(e)


MANY = """\
name: Lab
ssh: {key: nokey}
hosts: [192.0.2.10, 192.0.2.10]
services:
  - {name: a, seats: 0755}
  - {name: b, memory: lots, sets: 2}
  - {name: c, kind: generic, port: 80, secret_env: T}
docker: {source: snap}
"""


def test_every_problem_at_once_in_line_order(write):
    e = load_error(write, MANY)
    assert isinstance(e, InputErrors)
    got = [(p.line, p.field) for p in e.problems]
    assert got == [(1, "name"), (2, "ssh.key"), (3, "hosts[1]"), (5, "services[0].seats"), (6, "services[1].memory"),
                   (6, "services[1].sets"), (7, "services[2]"), (8, "docker.source")], str(e)
    lines = str(e).splitlines()
    assert len(lines) == len(got) and all(line.startswith(f"{e.file}:") for line in lines)
    assert "octal" in lines[3] and "needs `image:`" in lines[6]  # the YAML 1.1 number once, not also as 493
    assert (e.line, e.field) == (1, "name")  # read as one error, it is the first


def test_cross_section_checks_run_beside_schema_errors(write):
    text = SMALLEST + "  - {name: r, kind: rstudio, publish: 22}\ndocker: {source: snap}\n"
    e = load_error(write, text)
    assert [(p.line, p.field) for p in e.problems] == [(5, "services[1].publish"), (6, "docker.source")], str(e)
    assert "the SSH port (22)" in str(e)


def test_at_most_twenty_problems_are_shown(write):
    services = "".join(f"  - {{name: s{i}, seats: 0}}\n" for i in range(30))
    e = load_error(write, "name: lab\nhosts: [192.0.2.10]\nservices:\n" + services)
    assert len(e.problems) == 30
    lines = str(e).splitlines()
    assert len(lines) == 21 and lines[-1].endswith("and 10 more problems; fix these first")
    assert [p.line for p in e.problems] == sorted(p.line for p in e.problems)


def test_fab_check_prints_every_problem_one_line_each(write):
    out = subprocess.run([sys.executable, "-m", "fabric", "--search-root", str(ROOT), "check", "--hosts", str(write(MANY))],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    assert len(lines) == 8 and all(line.startswith("fleet: ") for line in lines), out.stderr


# --- fab init ---------------------------------------------------------------------------


def fab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fabric", "--search-root", str(ROOT), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_starter_passes_check_once_the_addresses_are_filled_in(tmp_path):
    made = fab("init", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    path = tmp_path / "lab.yml"
    refused = fab("check", "--hosts", "lab.yml", cwd=tmp_path)
    assert refused.returncode == 2 and "lab.yml:12: hosts[0].address" in refused.stderr, refused.stderr
    path.write_text(path.read_text().replace(starter.PLACEHOLDER.format(n=1), "192.0.2.10")
                    .replace(starter.PLACEHOLDER.format(n=2), "192.0.2.11"))
    ok = fab("check", "--hosts", "lab.yml", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "services[0].publish = 8000" in ok.stdout and f"services[0].image = {kinds.JUPYTER_IMAGE}" in ok.stdout


def test_init_never_overwrites(tmp_path):
    (tmp_path / "course.yml").write_text("mine\n")
    out = fab("init", "--hosts", "course.yml", cwd=tmp_path)
    assert out.returncode == 2 and "never overwrites" in out.stderr
    assert (tmp_path / "course.yml").read_text() == "mine\n"


def test_the_starter_names_every_option_with_its_default():
    text = starter.text("lab")
    assert yaml.safe_load(text)["services"] == [{"name": "notebook", "seats": 1}]
    for model in (inventory.InventoryModel, inventory.Service, inventory.Timeouts, inventory.SSHSettings,
                  inventory.DigitalOceanSettings):
        for name in model.model_fields:
            assert f"{name}:" in text, (model.__name__, name)
    for default in (kinds.JUPYTER_IMAGE, kinds.RSTUDIO_IMAGE, "memory: 2g", "cpus: 1 ", "publish: 8000", "port: 8888"):
        assert default in text, default


@pytest.mark.parametrize("stem,name", [("lab", "lab"), ("Stats 101", "stats-101"), ("2024", "lab"), ("x" * 40, "x" * 32)])
def test_the_starter_fleet_name_comes_from_the_file_name(stem, name):
    assert starter.fleet_name(stem) == name
