"""Accounts of ``mode: hub``: logins, generated passwords, the hash file, and the hub's module files.

Pure but for two things named as such: :func:`new_password` / :func:`new_salt`
draw random bytes (call them once per student and keep the result in the
state), and :func:`module_files` reads fleet's own source files (the code the
hub imports), which ship inside the fleet package.

What the fleet backend does with them:

1. ``logins = login_names(roster.names, previous=state_logins)``: a stable,
   DNS-safe login per student (kept in the state, never re-derived).
2. For a student without an account: ``password = new_password()``,
   ``hash = passwords.hash_password(password, bytes.fromhex(new_salt()))``; keep
   both in the state (the password for the handout, the hash for the file).
3. ``hash_file_text({login: hash})`` -> upload as ``<dir>/passwords`` (root, 0600),
   ``module_files()`` -> upload each file (root, 0644) to the same directory,
   which the hub container mounts read-only at /srv/fleet (PYTHONPATH).
"""
from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

from fleet.hub import passwords

HERE = Path(__file__).resolve().parent
# file name on the manager -> the module in this package that it is a copy of
MODULES = {"fleet_hub.py": "hubside.py", "fleet_hub_passwords.py": "passwords.py"}
HASH_FILE = "passwords"  # its name in the hub's directory
MAX_LOGIN = 20  # keeps FLEET-LOGIN (service) and FLEET-home-LOGIN (volume) within a DNS label
LOGIN_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$|^[a-z]$")
RESERVED = frozenset({"admin", "root", "hub", "idle-culler", "user", "api", "services"})


def new_password() -> str:
    """A student's password: 128 random bits as 32 hex digits (as fleet's seat tokens)."""
    return secrets.token_hex(16)


def new_salt() -> str:
    """A per-account salt: 16 random bytes as hex (keep it, or the hash, in the state)."""
    return secrets.token_hex(passwords.SALT_BYTES)


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")
    slug = re.sub(r"^[0-9-]+", "", slug)  # a login starts with a letter
    return slug[:MAX_LOGIN].rstrip("-") or "student"


def login_names(names: Sequence[str], previous: Mapping[str, str] | None = None) -> dict[str, str]:
    """A login per roster name: ``{name: login}``, stable across runs.

    ``previous`` maps a name's identity (:func:`fleet.roster.key`-style: NFC,
    case-folded, single spaces) or the name itself to the login it had; such
    names keep it. New names get an ASCII slug of the name ("Zoë Ngô" ->
    "zoe-ngo"), at most MAX_LOGIN characters, with -2, -3 ... when another
    student (previous or earlier in the list) has it. Logins never collide
    with RESERVED.
    """
    def ident(name: str) -> str:
        return " ".join(unicodedata.normalize("NFC", name).casefold().split())

    kept = {ident(k): v for k, v in (previous or {}).items()}
    taken = set(kept.values()) | RESERVED
    result: dict[str, str] = {}
    for name in names:
        old = kept.get(ident(name))
        if old is not None:
            result[name] = old
            continue
        base = _slug(name)
        login, n = base, 1
        while login in taken:
            n += 1
            suffix = f"-{n}"
            login = base[:MAX_LOGIN - len(suffix)].rstrip("-") + suffix
        taken.add(login)
        result[name] = login
    return result


def check_login(login: str) -> str:
    """``login`` if it can be a hub login here (see LOGIN_RE, MAX_LOGIN); ValueError otherwise."""
    if not LOGIN_RE.match(login) or len(login) > MAX_LOGIN or "--" in login:
        raise ValueError(f"{login!r} is not a hub login: 1-{MAX_LOGIN} lower-case letters, digits and single -, "
                         "starting with a letter")
    return login


def hash_file_text(hashes: Mapping[str, str]) -> str:
    """The hash file's text from ``{login: encoded hash}`` (hashes made once by passwords.hash_password)."""
    for login in hashes:
        check_login(login)
    return passwords.hash_file_text(hashes)


def hash_file_from_passwords(accounts: Mapping[str, tuple[str, str]]) -> str:
    """The hash file's text from ``{login: (password, salt_hex)}``; hashes each (tens of ms per account).

    The same input gives the same text: the salt is the caller's, kept with the password.
    """
    return hash_file_text({login: passwords.hash_password(pw, bytes.fromhex(salt))
                           for login, (pw, salt) in accounts.items()})


def module_files() -> dict[str, str]:
    """The Python files the hub imports, by their name on the manager: ``{"fleet_hub.py": text, ...}``."""
    return {target: (HERE / source).read_text(encoding="utf-8") for target, source in MODULES.items()}
