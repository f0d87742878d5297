"""The hub's own code for ``mode: hub``: an authenticator and a Swarm spawner.

This file runs INSIDE the hub container, not in fleet: fleet uploads it as
``fleet_hub.py`` beside ``fleet_hub_passwords.py`` (:mod:`fleet.hub.passwords`)
into a directory the hub mounts read-only and has on PYTHONPATH
(:func:`fleet.hub.auth.module_files`). It needs JupyterHub (>= 5), dockerspawner
14 and docker-py, which every hub image has; fleet itself never imports it.

FleetAuthenticator
    Checks a login and password against the hash file fleet writes (one
    scrypt hash per student, per-account salt, constant-time compare). There
    is no sign-up; the file is re-read when it changes, so a new password
    needs no hub restart. On start-up every user in the hub's database that
    is neither allowed nor admin is refused by :meth:`add_user`; with
    ``delete_invalid_users`` the hub then deletes them, so a student removed
    from the roster loses their account and open sessions.

FleetSwarmSpawner
    SwarmSpawner with each student's files on a named volume (``type=volume``
    mounts: SwarmSpawner's ``volumes`` makes bind mounts, dockerspawner #536)
    and the student kept on the node that holds that volume: the node id of
    the first placement is kept in the spawner's state (the hub's database)
    and becomes a ``node.id==`` constraint on every later start (also kept in a
    small file on the data volume, for a student deleted from the hub when they
    left the roster and added again later). A start that
    cannot be placed or is rejected fails at once with Swarm's reason instead
    of waiting out ``start_timeout``. The hub reaches the server at its task's
    address (not the service name, whose DNS entry can be stale right after a
    cull), and Swarm never restarts a task by itself (restart condition none).
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from pprint import pformat

import fleet_hub_passwords as passwords  # uploaded beside this file
from docker.errors import APIError
from docker.types import Mount
from dockerspawner import SwarmSpawner
from jupyterhub.auth import Authenticator
from traitlets import Dict, Float, Unicode

PIN_PREFIX = "node.id=="
WAITING = {"new", "allocated", "assigned", "accepted", "preparing", "ready", "starting"}


class FleetAuthenticator(Authenticator):
    """Logins and passwords from fleet's hash file; no sign-up, no other source of users."""

    hash_file = Unicode("/srv/fleet/passwords", config=True,
                        help="The file of login:scrypt-hash lines fleet writes (mounted read-only).")

    _cache_key: tuple[int, int, int] | None = None
    _cache: dict[str, str] = {}  # replaced whole, never mutated

    def _hashes(self) -> dict[str, str]:
        """login -> hash, read again whenever the file changed (fleet replaces it atomically)."""
        try:
            st = os.stat(self.hash_file)
        except OSError as exc:
            self.log.error("cannot read the hash file %s: %s; nobody can log in", self.hash_file, exc)
            return {}
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key != self._cache_key:
            with open(self.hash_file, encoding="utf-8") as f:
                self._cache = passwords.parse_hash_file(f.read())
            self._cache_key = key
        return self._cache

    async def authenticate(self, handler, data):
        login = self.normalize_username((data or {}).get("username") or "")
        password = (data or {}).get("password") or ""
        encoded = self._hashes().get(login)
        # scrypt takes tens of milliseconds: off the hub's event loop
        ok = await asyncio.to_thread(passwords.verify_password, encoded, password)
        if not ok:
            self.log.warning("failed login for %r", login)
            return None
        return login

    def add_user(self, user):
        """Refuse users the roster no longer has (called for every user in the database at start-up)."""
        if user.name not in self.allowed_users and user.name not in self.admin_users:
            raise ValueError(f"{user.name} is no longer in the roster")
        return super().add_user(user)


class FleetSwarmSpawner(SwarmSpawner):
    """One Swarm service per student; files on a per-student named volume; the student pinned to its node."""

    home_volume = Unicode("jupyterhub-user-{username}", config=True,
                          help="Name of the student's volume; {username} is the escaped login.")
    home_path = Unicode("/home/jovyan", config=True, help="Where the volume is mounted in the server.")
    object_labels = Dict(config=True, help="Labels on every service and volume made (e.g. fleet.name).")
    pending_grace = Float(15.0, config=True,
                          help="Seconds a task may stay unplaceable (no node with the reserved resources) "
                               "before the start fails with Swarm's reason.")

    pins_file = Unicode("", config=True,
                        help="JSON file of login -> node id beside the database (the data volume): a student "
                             "deleted from the hub and added again later goes back to the node holding their files.")

    node_id = Unicode("")  # the node holding the student's volume; kept in the hub's database

    # -- state: the node outlives a stopped server ------------------------------------------------
    def load_state(self, state):
        super().load_state(state)
        self.node_id = state.get("node_id", "") or ""

    def get_state(self):
        state = super().get_state()
        if self.node_id:
            state["node_id"] = self.node_id
        return state

    def clear_state(self):
        # called when a server stops or before a new one starts: the pin is deliberately kept
        node_id = self.node_id
        super().clear_state()
        self.node_id = node_id

    def _read_pins(self) -> dict:
        if not self.pins_file:
            return {}
        try:
            with open(self.pins_file, encoding="utf-8") as f:
                pins = json.load(f)
        except (OSError, ValueError):
            return {}
        return pins if isinstance(pins, dict) else {}

    def _write_pin(self) -> None:
        pins = self._read_pins()
        if not self.pins_file or pins.get(self.user.name) == self.node_id:
            return
        pins[self.user.name] = self.node_id
        partial = f"{self.pins_file}.partial"
        with open(partial, "w", encoding="utf-8") as f:
            json.dump(pins, f, indent=1, sort_keys=True)
        os.replace(partial, self.pins_file)

    # -- what the service gets --------------------------------------------------------------------
    def _labels(self) -> dict[str, str]:
        return {**self.object_labels, "fleet.hub.user": self.user.name}

    @property
    def volume_name(self) -> str:
        return self._render_templates(self.home_volume)

    @property
    def mounts(self):
        return [Mount(target=self.home_path, source=self.volume_name, type="volume", read_only=False,
                      labels=self._labels())]

    def placement_constraints(self) -> list[str]:
        """The configured constraints, without any old pin, plus the pin to the student's node."""
        configured = [c for c in (self.extra_placement_spec.get("constraints") or [])
                      if not c.replace(" ", "").startswith(PIN_PREFIX)]
        return configured + ([PIN_PREFIX + self.node_id] if self.node_id else [])

    async def _check_node(self) -> None:
        """Drop a pin to a node that left the swarm; refuse to start while the pinned node is down."""
        if not self.node_id:
            return
        try:
            node = await self.docker("inspect_node", self.node_id)
        except APIError as exc:
            if exc.response is not None and exc.response.status_code == 404:
                self.log.warning("%s: node %s holding %s left the swarm; starting on another node with an "
                                 "empty volume", self.user.name, self.node_id, self.volume_name)
                self.node_id = ""
                return
            raise
        state = (node.get("Status") or {}).get("State", "unknown")
        availability = (node.get("Spec") or {}).get("Availability", "unknown")
        if state != "ready" or availability != "active":
            hostname = (node.get("Description") or {}).get("Hostname", self.node_id)
            raise RuntimeError(f"{self.user.name}'s files are on node {hostname}, which is {state} "
                               f"({availability}); the server starts once that node is back")

    async def create_object(self):
        if not self.node_id:  # a user new to the database may have had files here before
            self.node_id = str(self._read_pins().get(self.user.name) or "")
        await self._check_node()
        self.extra_placement_spec = {**self.extra_placement_spec, "constraints": self.placement_constraints()}
        self.extra_create_kwargs = {**self.extra_create_kwargs, "labels": self._labels()}
        # The hub, not Swarm, restarts a server: a task Swarm restarted would get a new address the
        # hub's route does not know; with "none" a dead task makes poll() report the server stopped.
        self.extra_task_spec = {"restart_policy": {"Condition": "none"}, **self.extra_task_spec}
        return await super().create_object()

    async def get_ip_and_port(self):
        """The running task's own address on the overlay, not the service's DNS name.

        Measured: a service removed (culled) and created again under the same
        name within seconds left Swarm's DNS answering the old task's address,
        and the hub gave up after http_timeout. The task's address is exact.
        """
        task = await self.get_task()
        for attachment in (task or {}).get("NetworksAttachments") or []:
            if ((attachment.get("Network") or {}).get("Spec") or {}).get("Name") == self.network_name:
                for address in attachment.get("Addresses") or []:
                    return address.split("/")[0], self.port
        self.log.warning("%s: no address on %s in the task; using the service name", self.user.name, self.network_name)
        return await super().get_ip_and_port()

    # -- waiting for the task ---------------------------------------------------------------------
    def _why_not(self, status: dict) -> str:
        return status.get("Err") or status.get("Message") or pformat(status)

    async def start_object(self):
        """Wait until the task runs; fail early when Swarm cannot place it or rejects it; remember its node."""
        dt = 0.5
        unplaceable_since = None
        while True:
            task = await self.get_task()
            if not task:
                raise RuntimeError(f"Service {self.service_name} not found")
            status = task.get("Status") or {}
            state = (status.get("State") or "").lower()
            if state == "running":
                break
            if state == "pending":
                # the scheduler found no node: Err says e.g. "no suitable node (insufficient resources on 3 nodes)"
                unplaceable_since = unplaceable_since or time.monotonic()
                if time.monotonic() - unplaceable_since > self.pending_grace:
                    memory = self.mem_guarantee or self.mem_limit
                    raise RuntimeError(
                        f"no node can run {self.user.name}'s server (memory "
                        f"{f'{memory / 2**20:.0f} MiB' if isinstance(memory, int) else memory}, "
                        f"CPUs {self.cpu_guarantee or self.cpu_limit}"
                        + (f", pinned to node {self.node_id}" if self.node_id else "")
                        + f"): Swarm says {self._why_not(status)}")
            elif state in WAITING:
                unplaceable_since = None
            else:  # rejected, failed, shutdown, complete, orphaned, remove
                raise RuntimeError(f"Service {self.service_name} did not start ({state}): {self._why_not(status)}")
            await asyncio.sleep(dt)
            dt = min(dt * 1.5, 5)
        node_id = task.get("NodeID") or ""
        if node_id and node_id != self.node_id:
            self.log.info("%s: server placed on node %s; %s stays there", self.user.name, node_id, self.volume_name)
            self.node_id = node_id
        if node_id:
            self._write_pin()
