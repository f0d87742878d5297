"""The ``hosts:`` section: the servers the teacher already has.

An entry is a mapping or the shorthand ``host``, ``user@host`` or
``user@host:port``; after validation every entry becomes a :class:`Host` with
the ``ssh:`` defaults filled in and its key resolved against the inventory's
folder, so the same file means the same servers from any working directory.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from fleet.errors import InputError
from fleet.inventory.base import HOSTNAME_RE, Model, Problems, check_dns_name, check_user, line_for, resolve_key
from fleet.inventory.ssh import SSHSettings


def check_address(value: str) -> str:
    """An IP address or a host name; all digits and dots is a mistyped IP address, not a name."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if HOSTNAME_RE.match(value) and not value.replace(".", "").isdigit():
        return value
    raise ValueError(f"{value!r} is not an IP address or host name")


class HostEntry(Model):
    address: str
    user: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    key: str | None = None
    name: str | None = None  # the DNS name students use (and the certificate's), when it has one

    _address = field_validator("address")(lambda v: check_address(v))
    _name = field_validator("name")(lambda v: check_dns_name(v))
    _user = field_validator("user")(lambda v: check_user(v))

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        """Accept ``host``, ``user@host`` and ``user@host:port`` as shorthand."""
        if not isinstance(data, str):
            return data
        user, _, rest = data.rpartition("@")
        port = None
        if rest.count(":") == 1:
            rest, _, port_text = rest.partition(":")
            if not port_text.isdigit():
                raise ValueError(f"{data!r}: the port after ':' must be a number")
            port = int(port_text)
        rest = rest.strip("[]")
        return {"address": rest, **({"user": user} if user else {}), **({"port": port} if port else {})}


@dataclass(frozen=True)
class Host:
    """One server, with the inventory's SSH defaults filled in."""

    address: str
    user: str
    port: int
    key: str | None
    name: str | None = None  # DNS name for URLs and certificates, when it has one

    @property
    def id(self) -> str:
        """How the state file and the tables name this host."""
        return self.address if self.port == 22 else f"{self.address}:{self.port}"


def resolve_hosts(entries: list[HostEntry], ssh: SSHSettings, path: Path, problems: Problems) -> tuple[Host, ...]:
    """Every entry as a Host: ``ssh:`` defaults filled in, keys found beside the inventory, each server once.

    A problem (a key file missing, a server listed twice) goes to ``problems``; the host is then left out."""
    file, base, lines = str(path), path.parent, problems.lines

    def key_of(key: str | None, line: int | None, field: str) -> str | None:
        try:
            return resolve_key(key, base, file, line, field)
        except InputError as e:
            problems.error(e)
            return None

    default_key = key_of(ssh.key, line_for(lines, ("ssh", "key")), "ssh.key")
    seen: dict[tuple[str, int], int] = {}
    hosts = []
    for i, entry in enumerate(entries):
        line = line_for(lines, ("hosts", i))
        port = entry.port or ssh.port
        ident = (entry.address.lower(), port)
        if ident in seen:
            problems.add(f"{entry.address} port {port} is listed twice (also hosts[{seen[ident]}]); list each server once",
                         ("hosts", i))
            continue
        seen[ident] = i
        key = key_of(entry.key, line, f"hosts[{i}].key") if entry.key else default_key
        hosts.append(Host(address=entry.address, user=entry.user or ssh.user, port=port, key=key,
                          name=entry.name))
    return tuple(hosts)
