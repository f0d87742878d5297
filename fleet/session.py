"""The run context of one command: the inventory, its state, the SSH trust store, and how to reach hosts.

Every workflow (provision, status, teardown, the classroom tasks) and every
backend works through a Session; it sits below them and above the edges
(SSH, state, fan-out), so nothing down here knows what a seat or a hub is.
"""
from __future__ import annotations

import os
import resource
import threading
from collections.abc import Callable
from typing import TypeVar

from fleet import facts as facts_mod
from fleet import local, proxy
from fleet.errors import HostError, InputError
from fleet.facts import Facts
from fleet.hostkeys import HostKeys
from fleet.inventory import Host, Inventory, line_of
from fleet.inventory.tls import ca_root_path, eab_mac_key
from fleet.runner import Outcome, fan_out
from fleet.seats import network_name
from fleet.servers import records
from fleet.ssh import Remote
from fleet.state import State, path_for

Progress = Callable[[str], None]
R = TypeVar("R")


class Session:
    """One command's view of a fleet: the inventory, its state and the SSH trust store."""

    def __init__(self, inventory: Inventory, *, sudo_password: str | None = None,
                 accept_new_host_key: bool = False, progress: Progress | None = None):
        self.inventory = inventory
        self.state = State.load(path_for(inventory.path, inventory.name), inventory.name)
        self.keys = HostKeys(self.state.data["host_keys"], accept_new=accept_new_host_key)
        self.sudo_password = sudo_password
        self.progress = progress or (lambda line: None)
        self.unusable: set[str] = set()  # rented servers' addresses this run found unusable and left alone
        self.opened: list[Remote] = []  # every connection of this command, for its counts (stats())
        self.reached: dict[str, tuple[str, str | None]] = {}  # host id → where students reach it (reach())
        self._tls_material: tuple[str, bytes] | None = None
        self._tls_lock = threading.Lock()

    @property
    def hosts(self) -> tuple[Host, ...]:
        """Every server of the fleet: the inventory's hosts, then the rented servers the state knows.

        Rented servers stay part of the fleet until teardown destroys them, so
        status and plan see them without asking the cloud; provision refreshes
        the state from the API first (fleet/servers/lifecycle.py).
        """
        rented = records.hosts_from_state(self.inventory, self.state.data)
        return self.inventory.hosts + tuple(h for h in rented if h.address not in self.unusable)

    def connect(self, host: Host) -> Remote:
        remote = Remote(host, self.keys, connect_timeout=self.inventory.timeouts.connect,
                        sudo_password=self.sudo_password, progress=self.progress)
        with self.keys.lock:
            self.opened.append(remote)
        self._save_pins()
        return remote

    def reach(self, host: Host, remote: Remote) -> tuple[str, str | None]:
        """Where students reach ``host`` (fleet.proxy.reach), as its open connection found it; kept for this command."""
        found = proxy.reach(host, remote.hostname, remote.peer, local.resolve)
        with self._tls_lock:
            self.reached[host.id] = found
        return found

    def tls_material(self) -> tuple[str, bytes]:
        """(the EAB MAC key from its environment variable, tls.ca_root's PEM), read once per command.

        InputError (exit 2, nothing touched when asked before the hosts are) when
        the variable is not set or the file cannot be read; the key is never quoted.
        """
        with self._tls_lock:
            if self._tls_material is None:
                inv, tls = self.inventory, self.inventory.model.tls
                mac = eab_mac_key(tls, os.environ, file=str(inv.path), line=line_of(inv, "tls", "eab", "mac_key_env"))
                root = b""
                if tls.ca_root:
                    try:
                        root = ca_root_path(tls, inv.path).read_bytes()
                    except OSError as e:
                        raise InputError(f"cannot read {tls.ca_root!r}: {e.strerror or e}", file=str(inv.path),
                                         line=line_of(inv, "tls", "ca_root"), field="tls.ca_root") from None
                self._tls_material = (mac, root)
            return self._tls_material

    def certificate(self, host: Host, remote: Remote, *, material: bool = True) -> proxy.Certificate:
        """Where ``host``'s certificate comes from this command (fleet.proxy.certificate), with where students reach it.

        ``material``: with the EAB key and the CA's root the proxy's files carry
        (a command that writes no proxy, like status, needs neither).
        """
        address, ip = self.reach(host, remote)
        mac, root = self.tls_material() if material else ("", b"")
        return proxy.certificate(self.inventory, host, address, ip, eab_mac=mac, ca_root=root)

    def address(self, host: Host) -> str | None:
        """Where students reach ``host``: as this command's connection found it, else as the state keeps it."""
        with self._tls_lock:
            found = self.reached.get(host.id)
        return found[0] if found else (self.state.site(host.id).get("address") or None)

    def stats(self) -> dict:
        """SSH connections, round trips, image and course data bytes sent from this computer, per host."""
        hosts: dict[str, dict[str, int]] = {}
        for r in list(self.opened):
            h = hosts.setdefault(r.host.id, {"connections": 0, "round_trips": 0, "pushed_bytes": 0, "data_bytes": 0})
            h["connections"] += 1
            h["round_trips"] += r.round_trips
            h["pushed_bytes"] += r.pushed_bytes
            h["data_bytes"] += r.data_bytes
        return {"hosts": hosts, "pushed_bytes": sum(h["pushed_bytes"] for h in hosts.values()),
                "data_bytes": sum(h["data_bytes"] for h in hosts.values()),
                "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}

    def _save_pins(self) -> None:
        with self.keys.lock, self.state.lock:
            if self.state.data["host_keys"] != self.keys.pinned:
                self.state.data["host_keys"] = dict(self.keys.pinned)
                self.state.save()

    def gather(self, remote: Remote, images: list[str], *, version: bool = False) -> Facts:
        """The host's facts in one round trip; ``version``: also the engine's, for a table people read."""
        name = self.inventory.name
        step = facts_mod.probe(name, network_name(name), images, self.inventory.timeouts.command, version=version)
        result = remote.apply(step)
        try:
            return facts_mod.parse(result.stdout)
        except (ValueError, KeyError) as e:
            raise HostError(f"could not read the host's facts: {e}") from None

    def fan_out(self, work: Callable[[Host], R], hosts: tuple[Host, ...] | None = None) -> list[Outcome[Host, R]]:
        return fan_out(self.hosts if hosts is None else hosts, work, parallel=self.inventory.model.parallel,
                       label=lambda h: h.id, progress=self.progress)
