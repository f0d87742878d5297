"""The wheel, installed like any Python tool, runs from a course folder outside the checkout (issue #17).

Builds the sdist and the wheel from the sdist (`python -m build`, as a
release would), installs the wheel into a fresh venv (no system site
packages) in a temporary folder, and runs `fleet` from a teacher's course
folder there: --version, -l, --help, check on the example inventory, and plan
against a real test host. Nothing of the checkout is on the path: no
PYTHONPATH, and the working directory is the course folder.

The dependencies come from a wheelhouse of requirements.txt's pins
(build/wheelhouse, filled once by `pip download` and again only when
requirements.txt or the build requirement changes), so the install is offline
and also proves that pyproject's ranges admit the pinned versions.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.hosts

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / "build" / "wheelhouse"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _run(*argv: str | Path, timeout: int = 300, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run([str(a) for a in argv], text=True, capture_output=True, timeout=timeout, **kw)
    assert out.returncode == 0, f"{argv}: exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


def _wheelhouse() -> Path:
    """Wheels of every pinned runtime requirement and of the build backend; downloaded only when those change."""
    wanted = (ROOT / "requirements.txt").read_text() + "\n".join(PROJECT["build-system"]["requires"]) + "\n"
    stamp = WHEELHOUSE / ".requirements"
    if not stamp.is_file() or stamp.read_text() != wanted:
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        _run(sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:", "--dest", WHEELHOUSE,
             "-r", ROOT / "requirements.txt", *PROJECT["build-system"]["requires"], timeout=600)
        stamp.write_text(wanted)
    return WHEELHOUSE


def _offline(wheelhouse: Path) -> dict[str, str]:
    """pip answered from the wheelhouse alone, and nothing of the checkout or of a venv in the environment."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "FLEET_STATE_DIR") and not k.startswith("PIP_")}
    return {**env, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_CONFIG_FILE": os.devnull}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The built wheel installed into a fresh venv; returns the venv, the wheel and the environment to run `fleet` in."""
    work = tmp_path_factory.mktemp("install")
    env = _offline(_wheelhouse())
    dist = work / "dist"
    _run(sys.executable, "-m", "build", "--outdir", dist, ROOT, env=env, timeout=300)
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    venv = work / "venv"
    _run(sys.executable, "-m", "venv", venv, env=env)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    _run(venv / "bin" / "pip", "install", "--quiet", wheel, env=env, cwd=work, timeout=300)
    course = work / "course"
    course.mkdir()
    return {"venv": venv, "wheel": wheel, "sdist": sdist, "course": course,
            "env": {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}}


def fleet(installed: dict, *args: str, cwd: Path | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    """The installed `fleet` command, run from the course folder (or ``cwd``)."""
    return subprocess.run([str(installed["venv"] / "bin" / "fleet"), *args], cwd=cwd or installed["course"],
                          env=installed["env"], text=True, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_the_wheel_holds_fleet_and_its_tasks_and_nothing_of_the_checkout(installed):
    names = _run(sys.executable, "-m", "zipfile", "-l", installed["wheel"]).stdout
    assert "fleet/tasks/cli.py" in names and "fleet/cloud/digitalocean.py" in names and "/licenses/LICENSE" in names
    assert not any(line.split()[0].startswith(("tasks/", "practice/", "tests/", "fabfile"))
                   for line in names.splitlines()[1:])
    where = _run(installed["venv"] / "bin" / "python", "-c",
                 "import fleet, fleet.tasks, importlib.util; print(fleet.__file__); print(importlib.util.find_spec('tasks'))",
                 cwd=installed["course"], env=installed["env"]).stdout.splitlines()
    assert where[0].startswith(str(installed["venv"])) and where[1] == "None"
    print(f"\nwheel {installed['wheel'].name}: {installed['wheel'].stat().st_size} bytes; "
          f"sdist {installed['sdist'].stat().st_size} bytes")


def test_version_list_help_and_completion(installed):
    out = fleet(installed, "--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"fleet {PROJECT['project']['version']}"
    listed = fleet(installed, "-l").stdout
    assert all(f"  {task} " in listed for task in ("provision", "plan", "check", "handout", "teardown", "upgrade"))
    assert "Usage: fleet [--core-opts] provision" in fleet(installed, "--help", "provision").stdout
    assert "fleet --complete" in fleet(installed, "--print-completion-script", "bash").stdout


def test_check_the_example_inventory_in_a_course_folder(installed, tmp_path):
    course = installed["course"]
    example = (ROOT / "inventories" / "lab.yml").read_text()
    assert "  # key: ~/.ssh/id_ed25519" in example
    (course / "example.yml").write_text(example.replace("  # key: ~/.ssh/id_ed25519", "  key: keys/teacher"))
    (course / "keys").mkdir()
    (course / "keys" / "teacher").write_text("a private key")
    out = fleet(installed, "check", "--hosts", "example.yml")
    assert out.returncode == 0, out.stderr
    assert "example.yml: ok. Fleet 'stats101': 3 hosts x 2 seats" in out.stdout
    elsewhere = fleet(installed, "check", "--hosts", str(course / "example.yml"), cwd=tmp_path)
    assert elsewhere.returncode == 0, elsewhere.stderr  # the key is found beside the inventory, not in the cwd
    (course / "example.yml").write_text(example.replace("  # key: ~/.ssh/id_ed25519", "  key: keys/missing"))
    bad = fleet(installed, "check", "--hosts", "example.yml")
    assert bad.returncode == 2 and str(course / "keys" / "missing") in bad.stderr


PLAN_INVENTORY = """\
name: install-check
ssh: {{user: teacher, key: id_ed25519}}   # beside this file
hosts:
  - {address}
docker: {{source: distro}}
timeouts: {{connect: 10}}
services:
  - name: notebook
    kind: jupyter
    image: quay.io/jupyter/scipy-notebook:2025-06-02
    publish: 8000
    seats: 1
    memory: 256m
"""


def test_plan_against_a_real_host_from_the_course_folder(installed, start_hosts, keypair, tmp_path):
    (host,) = start_hosts("install")
    course = installed["course"]
    shutil.copy(keypair[0], course / "id_ed25519")
    (course / "id_ed25519").chmod(0o600)
    (course / "lab.yml").write_text(PLAN_INVENTORY.format(address=host.address))
    out = fleet(installed, "plan", "--hosts", "lab.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert host.address in out.stdout and "docker" in out.stdout
    assert (course / ".fleet" / "install-check.json").is_file()  # the state sits beside the inventory
    again = fleet(installed, "plan", "--hosts", str(course / "lab.yml"), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout == out.stdout  # from another folder: the same plan, the same state (its host key pinned)
    assert not (tmp_path / ".fleet").exists()
