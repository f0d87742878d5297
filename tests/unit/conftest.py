"""Shared by the inventory tests: write an inventory beside the key files it names."""
from __future__ import annotations

from pathlib import Path

import pytest

from fleet import inventory
from fleet.errors import InputError


@pytest.fixture
def write(tmp_path: Path):
    """Returns write(text) → the path of lab.yml holding ``text``; key files id_test and keys/id_ed25519(.pub) exist."""
    (tmp_path / "id_test").write_text("not really a key")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "id_ed25519").write_text("private")
    (tmp_path / "keys" / "id_ed25519.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 teacher\n")

    def _write(text: str) -> Path:
        p = tmp_path / "lab.yml"
        p.write_text(text)
        return p

    return _write


def load_error(write, text: str) -> InputError:
    """The InputError loading ``text`` gives (always exit status 2)."""
    with pytest.raises(InputError) as e:
        inventory.load(write(text))
    assert e.value.exit_code == 2
    return e.value
