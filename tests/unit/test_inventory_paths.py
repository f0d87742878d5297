"""Every path in an inventory is read from the inventory's folder, and the state sits beside it.

The installed `fleet` command runs from whatever folder the teacher is in
(issue #17): running it from another folder must change nothing.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from fleet import inventory, lock
from fleet import state as state_mod
from fleet.errors import InputError

INVENTORY = """\
name: stats101
ssh: {user: teacher, key: keys/id_ed25519}
hosts:
  - 192.0.2.10
  - {address: 192.0.2.11, key: other_key}
roster: students.csv
services:
  - {name: notebook, image: "quay.io/jupyter/scipy-notebook:2025-06-02", publish: 8000, seats: 2, memory: 1g}
"""

DROPLETS = """\
name: stats102
digitalocean: {count: 1, region: ams3, size: s-2vcpu-4gb, image: ubuntu-24-04-x64, ssh_key: keys/id_ed25519.pub}
services:
  - {name: notebook, image: "quay.io/jupyter/scipy-notebook:2025-06-02", publish: 8000, seats: 2, memory: 1g}
"""


def _folder(root: Path, students: str) -> None:
    """A course folder: key files and a roster, as a teacher keeps them beside lab.yml."""
    (root / "keys").mkdir(parents=True)
    (root / "keys" / "id_ed25519").write_text("private")
    (root / "keys" / "id_ed25519.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 teacher\n")
    (root / "other_key").write_text("private")
    (root / "students.csv").write_text(students)


@pytest.fixture
def course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp/course/lab.yml with its files; the working directory is tmp/elsewhere, which holds decoys of the same names."""
    folder = tmp_path / "course"
    _folder(folder, "name\nAna López\nBen Okafor\n")
    (folder / "lab.yml").write_text(INVENTORY)
    (folder / "droplets.yml").write_text(DROPLETS)
    elsewhere = tmp_path / "elsewhere"
    _folder(elsewhere, "name\nNot In This Course\n")  # same names: found only if paths were read from the cwd
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("FLEET_STATE_DIR", raising=False)
    return folder


@pytest.mark.parametrize("given", ["../course/lab.yml", "absolute"])
def test_keys_roster_and_state_are_found_beside_the_inventory(course: Path, given: str):
    path = course / "lab.yml" if given == "absolute" else Path(given)
    inv = inventory.load(path)

    assert [h.key for h in inv.hosts] == [str(course / "keys" / "id_ed25519"), str(course / "other_key")]
    assert all(Path(h.key).is_absolute() for h in inv.hosts)  # a later chdir could not change them
    assert inv.roster.names == ("Ana López", "Ben Okafor")
    assert Path(inv.roster.source) == course / "students.csv"

    state_path = state_mod.path_for(inv.path, inv.name)
    assert state_path.resolve() == course / ".fleet" / "stats101.json"
    assert lock.path_for(state_path).resolve() == course / ".fleet" / "stats101.lock"
    state = state_mod.State.load(state_path, inv.name)
    state.save()
    assert (course / ".fleet" / "stats101.json").is_file()
    assert not (Path.cwd() / ".fleet").exists()


def test_droplet_key_is_found_beside_the_inventory(course: Path):
    inv = inventory.load(Path("../course/droplets.yml"))
    assert inv.droplet_key == (course / "keys" / "id_ed25519.pub", course / "keys" / "id_ed25519")


def test_a_key_missing_beside_the_inventory_is_not_taken_from_the_working_directory(course: Path):
    (course / "other_key").unlink()  # the working directory still has one
    with pytest.raises(InputError) as e:
        inventory.load(Path("../course/lab.yml"))
    assert str(course / "other_key") in str(e.value)


def test_the_state_folder_moves_only_with_FLEET_STATE_DIR(course: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("FLEET_STATE_DIR", str(tmp_path / "states"))
    inv = inventory.load(Path("../course/lab.yml"))
    assert state_mod.path_for(inv.path, inv.name) == tmp_path / "states" / "stats101.json"
