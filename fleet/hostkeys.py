"""SSH host keys: known_hosts, plus the keys pinned in the fleet's state on first contact.

Fabric's Connection accepts any key (AutoAddPolicy); fleet loads known_hosts
and the pins instead. A host seen for the first time has its key pinned (trust
on first use); a key that differs from either stops that host.
"""
from __future__ import annotations

import threading
from pathlib import Path

import paramiko

from fleet.inventory import Host


class HostKeys:
    """Host keys pinned in the state, shared by all connections of a run (thread-safe)."""

    def __init__(self, pinned: dict[str, str] | None = None, *, accept_new: bool = False):
        self.pinned = dict(pinned or {})
        self.accept_new = accept_new  # an explicit flag: trust a changed key
        self.lock = threading.Lock()

    def install(self, client: paramiko.SSHClient, name: str) -> None:
        """Make ``client`` check the host's key against known_hosts and the pins."""
        if self.accept_new:  # the teacher said the server was rebuilt: pin whatever it shows now
            client.set_missing_host_key_policy(_Pin(self))
            return
        try:
            client.load_system_host_keys()
        except (OSError, paramiko.SSHException):
            pass
        with self.lock:
            line = self.pinned.get(name)
        if line:
            keytype, blob = line.split(" ", 1)
            client.get_host_keys().add(name, keytype, paramiko.PKey.from_type_string(keytype, _b64(blob)))
        client.set_missing_host_key_policy(_Pin(self))

    def pin(self, name: str, key: paramiko.PKey) -> None:
        with self.lock:
            self.pinned[name] = f"{key.get_name()} {key.get_base64()}"


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


class _Pin(paramiko.MissingHostKeyPolicy):
    def __init__(self, keys: HostKeys):
        self.keys = keys

    def missing_host_key(self, client, hostname, key):  # noqa: ANN001 (paramiko's signature)
        self.keys.pin(hostname, key)


def known_hosts_name(host: Host) -> str:
    return host.address if host.port == 22 else f"[{host.address}]:{host.port}"


def default_known_hosts() -> Path:
    return Path.home() / ".ssh" / "known_hosts"
