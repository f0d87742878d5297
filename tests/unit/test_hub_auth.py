"""fleet/hub/auth.py: logins from the roster, generated passwords, the hash file, the hub's module files."""
from __future__ import annotations

import ast
import re

import pytest

from fleet.hub import auth, passwords


def test_logins_are_ascii_slugs_that_start_with_a_letter():
    names = ["Zoë Ngô", "Ada  Lovelace", "O'Brien, Seán", "42 Douglas", "李雷", "a" * 40]
    logins = auth.login_names(names)
    assert logins["Zoë Ngô"] == "zoe-ngo"
    assert logins["Ada  Lovelace"] == "ada-lovelace"
    assert logins["O'Brien, Seán"] == "o-brien-sean"
    assert logins["42 Douglas"] == "douglas"
    assert logins["李雷"] == "student"
    assert logins["a" * 40] == "a" * auth.MAX_LOGIN
    for login in logins.values():
        auth.check_login(login)


def test_collisions_get_numbers_and_reserved_words_are_avoided():
    logins = auth.login_names(["Ana Silva", "Ána Silva", "ANA SILVA!", "Admin", "Hub"])
    assert list(logins.values()) == ["ana-silva", "ana-silva-2", "ana-silva-3", "admin-2", "hub-2"]


def test_previous_logins_are_kept_whatever_the_order_and_spelling():
    first = auth.login_names(["Ana Silva", "Ána Silva"])
    again = auth.login_names(["ána  silva", "Bo Li", "Ana Silva"], previous=first)
    assert again == {"ána  silva": "ana-silva-2", "Bo Li": "bo-li", "Ana Silva": "ana-silva"}
    # a student who left keeps their login reserved from newcomers with the same name
    later = auth.login_names(["Ána Silva"], previous={"ana silva": "ana-silva"})
    assert later == {"Ána Silva": "ana-silva-2"}


def test_check_login():
    for good in ("a", "ada", "ada-lovelace", "x1"):
        assert auth.check_login(good) == good
    for bad in ("", "Ada", "1ada", "ada-", "-ada", "ada--b", "ad a", "a" * 21, "ada.l", "ädа"):
        with pytest.raises(ValueError):
            auth.check_login(bad)


def test_new_password_has_128_bits_and_salts_differ():
    pw = auth.new_password()
    assert re.fullmatch(r"[0-9a-f]{32}", pw)
    assert auth.new_password() != pw
    assert len(bytes.fromhex(auth.new_salt())) == 16 and auth.new_salt() != auth.new_salt()


def test_hash_file_from_passwords_is_checkable_and_deterministic():
    accounts = {"ada": ("pw-ada", "00" * 16), "bob": ("pw-bob", "11" * 16)}
    text = auth.hash_file_from_passwords(accounts)
    assert text == auth.hash_file_from_passwords(accounts)
    hashes = passwords.parse_hash_file(text)
    assert passwords.verify_password(hashes["ada"], "pw-ada")
    assert not passwords.verify_password(hashes["ada"], "pw-bob")  # another student's password
    assert "pw-ada" not in text
    with pytest.raises(ValueError):
        auth.hash_file_text({"Not A Login": hashes["ada"]})


def test_module_files_are_the_package_sources_and_import_each_other_by_their_shipped_names():
    files = auth.module_files()
    assert set(files) == {"fleet_hub.py", "fleet_hub_passwords.py"}
    hub = ast.parse(files["fleet_hub.py"])
    imported = {a.name for n in ast.walk(hub) if isinstance(n, ast.Import) for a in n.names}
    assert "fleet_hub_passwords" in imported
    for text in files.values():  # standalone on the hub: nothing from fleet
        tree = ast.parse(text)
        modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        modules |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any(m == "fleet" or m.startswith("fleet.") for m in modules)
    classes = {n.name for n in hub.body if isinstance(n, ast.ClassDef)}
    assert classes == {"FleetAuthenticator", "FleetSwarmSpawner"}
