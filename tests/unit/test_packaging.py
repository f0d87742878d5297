"""The wheel carries what the installed `fleet` command needs, and that command is Fabric's over the same tasks.

tests/integration/test_install.py builds and installs the real wheel; these
checks are the quick ones that keep pyproject.toml in step with the folders.
"""
from __future__ import annotations

import ast
import re
import signal
import tomllib
from pathlib import Path

import pytest

import tasks
from tasks import cli, common

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _packages(folder: Path, name: str) -> set[str]:
    return {".".join([name, *p.parent.relative_to(folder).parts]) for p in folder.rglob("__init__.py")
            if "__pycache__" not in p.parts}


def test_every_package_folder_is_in_the_wheel():
    setuptools = PROJECT["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"fleet.tasks": "tasks"}
    assert set(setuptools["packages"]) == _packages(ROOT / "fleet", "fleet") | _packages(ROOT / "tasks", "fleet.tasks")


def test_the_packages_hold_only_python_files():
    """No package data is declared: a data file read at run time would be missing from the wheel."""
    others = [p for folder in ("fleet", "tasks") for p in (ROOT / folder).rglob("*")
              if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts]
    assert others == []


def _imports(path: Path) -> list[tuple[str, int]]:
    """(module, level) of every import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, 0) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


@pytest.mark.parametrize("folder", ["fleet", "tasks"])
def test_nothing_in_the_wheel_imports_what_stays_in_the_checkout(folder: str):
    """tasks/ is fleet.tasks once installed, so its modules import each other relatively; practice/ and tests/ stay out."""
    outside = re.compile(r"^(tasks|practice|tests|benchmarks|fabfile)(\.|$)")
    bad = [(str(p.relative_to(ROOT)), module) for p in (ROOT / folder).rglob("*.py")
           for module, level in _imports(p) if level == 0 and outside.match(module)]
    assert bad == []


def test_metadata():
    project = PROJECT["project"]
    assert project["name"] == cli.DISTRIBUTION
    assert project["requires-python"] == ">=3.11"
    assert project["license"] == "MIT" and (ROOT / "LICENSE").is_file()
    assert project["scripts"] == {"fleet": "fleet.tasks.cli:main"}
    pinned = {re.split(r"==", line)[0].lower() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line and not line.startswith("#")}
    declared = {re.split(r"[~<>=!; ]", d)[0].lower() for d in project["dependencies"]}
    assert pinned <= declared  # what the repo's venv pins, the wheel asks for (and requests, imported directly)


def test_fleet_is_fabs_program_over_the_same_collection(capsys):
    program = cli.program()
    assert program.namespace is tasks.ns
    program.run(["fleet", "--version"], exit=False)
    assert capsys.readouterr().out.splitlines()[0].startswith("fleet ")
    program.run(["fleet", "-l"], exit=False)
    listed = capsys.readouterr().out
    assert all(f"  {name} " in listed for name in tasks.ns.task_names)
    program.run(["fleet", "--help", "provision"], exit=False)
    assert "Usage: fleet [--core-opts] provision" in capsys.readouterr().out
    program.run(["fleet", "--print-completion-script", "bash"], exit=False)
    assert "fleet --complete" in capsys.readouterr().out
    flags = {n for a in program.initial_context.flags.values() for n in a.names}
    assert {"prompt-for-sudo-password", "identity", "ssh-config"} <= flags  # Fabric's core options, as with fab


def test_hints_name_the_command_the_teacher_typed(monkeypatch, write, capsys):
    monkeypatch.setattr(common, "COMMAND", "fab")
    assert common.command("handout --hosts lab.yml") == "fab handout --hosts lab.yml"
    monkeypatch.setenv("FLEET_STATE_DIR", str(write("x").parent / "state"))
    lab = write("name: hints\nhosts: [192.0.2.10]\nservices: [{name: nb, image: 'j:1', publish: 8000}]\n")
    monkeypatch.setattr("sys.argv", ["fleet", "handout", "--hosts", str(lab)])
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(SystemExit) as e:
            cli.main()
    finally:
        for s, handler in before.items():  # a finished task ignores late signals; this process goes on
            signal.signal(s, handler)
    assert e.value.code == 1
    assert f"run fleet provision --hosts {lab} first" in capsys.readouterr().err
