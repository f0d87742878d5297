"""What every section of the inventory shares: the strict model base, where a
value sits in the file, and the checks more than one section makes.

The sections (ssh, hosts, services, tls, cloud) import this module and, but
for hosts filling in the ``ssh:`` defaults, not each other, so each can be
read, and later grown, on its own.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from fleet.errors import InputError, InputErrors

Path_ = tuple[Any, ...]  # where a value sits in the YAML: keys and list indexes, e.g. ("services", 0, "env")

LABEL_ = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){LABEL_}(\.{LABEL_})*$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")


class Model(BaseModel):
    """Strict, closed and frozen: YAML's ``no`` and ``0755`` are refused rather than coerced, and a
    misspelt key is an error rather than silently ignored."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def dotted(path: Path_) -> str:
    """How an error names the field: ``services[0].env``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def line_for(lines: dict[Path_, int], path: Path_) -> int | None:
    """The line of ``path``, or of its nearest ancestor written in the file (a default has no line)."""
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return None


class Problems:
    """Every problem found in one inventory, reported together in the file's line order.

    The checks add to it instead of stopping at the first; a value found wrong
    by one check is not reported again by a later one (a YAML 1.1 number, then
    the schema's complaint about the same field).
    """

    def __init__(self, file: str, lines: dict[Path_, int] | None = None):
        self.file = file
        self.lines = lines or {}
        self.found: list[InputError] = []
        self._fields: set[str] = set()

    def add(self, message: str, path: Path_ = (), *, line: int | None = None, field: str | None = None) -> None:
        """A problem at ``path`` (its line and dotted name found from it, unless given)."""
        field = dotted(path) if field is None else field
        if line is None:
            line = line_for(self.lines, path)
        self.error(InputError(message, file=self.file, line=line, field=field))

    def error(self, e: InputError) -> None:
        """A problem a check raised (e.g. a key file that does not exist)."""
        for one in getattr(e, "problems", None) or [e]:
            if one.field and one.field in self._fields:
                continue
            self._fields.add(one.field)
            self.found.append(one)

    def __bool__(self) -> bool:
        return bool(self.found)

    def raise_any(self) -> None:
        """Raise every problem found so far, in line order (exit status 2); nothing when there is none."""
        if self.found:
            raise InputErrors(sorted(self.found, key=lambda e: e.line or 0))


def check_user(value: str | None) -> str | None:
    """A login name (ssh, a host's, the droplets', a service's file owner)."""
    if value is not None and not USER_RE.match(value):
        raise ValueError(f"{value!r} is not a login name (lower-case letters, digits, _ . -)")
    return value


def check_image(value: str) -> str:
    """An image reference (a service's, the proxy's): no spaces or shell characters reach ``docker run``."""
    if not IMAGE_RE.match(value):
        raise ValueError(f"{value!r} is not an image reference, e.g. quay.io/jupyter/scipy-notebook:2025-06-02")
    return value


def check_dns_name(value: str | None) -> str | None:
    """A DNS name with at least one dot (a host's ``name:``, the TLS ``domain``): certificates are issued for it."""
    if value is not None and (not HOSTNAME_RE.match(value) or "." not in value):
        raise ValueError(f"{value!r} is not a DNS name like lab1.example.org")
    return value


def resolve_key(key: str | None, base: Path, file: str, line: int | None, field: str) -> str | None:
    """A key file named in the inventory, relative to the inventory's folder, which must exist."""
    if key is None:
        return None
    resolved = (base / Path(key).expanduser()).resolve()
    if not resolved.is_file():
        raise InputError(f"key file {key!r} does not exist (looked at {resolved})", file=file, line=line, field=field)
    return str(resolved)
