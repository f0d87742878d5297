"""The inventory as a whole: the top-level schema and the loaded result.

:class:`InventoryModel` is the file's top level; each section's model lives in
its own module (ssh, hosts, services, tls, cloud). The small sections with no
checks of their own (docker, timeouts, handout) are here. :class:`Inventory`
is what load() returns: the validated model with hosts resolved and the
roster read, which the rest of fleet uses.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from fleet import roster as roster_mod
from fleet.inventory.base import Model
from fleet.inventory.cloud import DigitalOceanSettings
from fleet.inventory.hosts import Host, HostEntry
from fleet.inventory.hub import HubSection
from fleet.inventory.services import DataSettings, Service
from fleet.inventory.ssh import SSHSettings
from fleet.inventory.tls import ProxySettings, TLSSettings

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$")


class DockerSettings(Model):
    source: Literal["official", "distro"] = "official"


class Timeouts(Model):
    """Seconds. Every remote wait and command is bounded by one of these."""

    connect: int = Field(15, ge=1, le=600)
    command: int = Field(300, ge=1, le=7200)
    install: int = Field(900, ge=10, le=7200)
    lock: int = Field(300, ge=0, le=7200)
    cloud_init: int = Field(600, ge=0, le=7200)
    push: int = Field(1800, ge=10, le=7200)
    droplet: int = Field(600, ge=10, le=7200)  # a new droplet: active, public IPv4 and SSH; teardown: all gone
    certificate: int = Field(120, ge=5, le=3600)  # an ACME CA's answer to an order (then: auto falls back, acme fails)


class HandoutSettings(Model):
    """What the printed handout says besides the seats; see fleet/handout.py."""

    title: str | None = Field(None, min_length=1, max_length=80)  # default: the fleet's name
    # Shown on cards whose address is https. None: a default sentence for the fleet's own (self-signed)
    # certificates; "": nothing, for certificates browsers trust (a real domain, sslip).
    certificate_note: str | None = Field(None, max_length=400)


class InventoryModel(Model):
    name: str
    ssh: SSHSettings = SSHSettings()
    hosts: list[HostEntry] = []  # at least one server here or a digitalocean block: checked in load()
    digitalocean: DigitalOceanSettings | None = None
    docker: DockerSettings = DockerSettings()
    tls: TLSSettings = TLSSettings()
    proxy: ProxySettings = ProxySettings()
    firewall: bool = False  # true: ufw/firewalld allow SSH and the seat ports only
    parallel: int = Field(10, ge=1, le=200)
    timeouts: Timeouts = Timeouts()
    services: list[Service] = Field(min_length=1)
    roster: str | list[Any] | None = None  # a CSV file beside the inventory, or the names; items checked in load()
    data: DataSettings | None = None  # course data for every service's seats (a service's own `data:` wins)
    mode: Literal["seats", "hub"] = "seats"  # seats: fixed containers per host; hub: JupyterHub on Docker Swarm
    hub: HubSection = HubSection()
    handout: HandoutSettings = HandoutSettings()

    @field_validator("roster", mode="before")
    @classmethod
    def _roster(cls, v: Any) -> Any:
        if v is not None and not isinstance(v, str | list):
            raise ValueError("must be a CSV file (roster: students.csv) or a list of names (`- Ana López` lines)")
        if v == "":
            raise ValueError("name the CSV file, e.g. roster: students.csv, or leave out `roster:`")
        return v

    @field_validator("digitalocean", mode="before")
    @classmethod
    def _digitalocean(cls, v: Any) -> Any:
        if v is None:
            raise ValueError("an empty block: give count, region, size, image and ssh_key, or remove `digitalocean:`")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(
                f"{v!r} is not a fleet name: 1-32 lower-case letters, digits and -, starting with a letter "
                "(it names containers, labels and droplets)"
            )
        return v

    @model_validator(mode="after")
    def _hub_mode(self) -> InventoryModel:
        if self.mode == "hub" and (len(self.services) != 1 or self.services[0].kind != "jupyter"):
            raise ValueError("mode: hub serves one Jupyter server image to every student: list exactly one service, "
                             "of kind jupyter (its image, memory and cpus are each student's server's)")
        if self.mode == "hub":
            svc = self.services[0]
            unsupported = [f for f, used in (("data", self.data or svc.data), ("spares", svc.spares),
                                             ("groups", svc.groups)) if used]
            if unsupported:
                raise ValueError(f"mode: hub has no fixed seats: {', '.join(unsupported)} work in mode: seats only; "
                                 "leave them out")
        return self

    def reserved_ports(self) -> dict[int, str]:
        """Host ports no seat may take, and what holds each: SSH on every host (22 on droplets), and
        ports 80 and 443 when an ACME CA may validate there (tls: auto, acme, sslip)."""
        ssh_ports = {self.ssh.port} | {h.port for h in self.hosts if h.port} | ({22} if self.digitalocean else set())
        reserved = {port: "the SSH port" for port in ssh_ports}
        if self.tls.mode in ("sslip", "acme", "auto"):
            reserved[80] = "port 80, which the ACME CA (Let's Encrypt) needs for its HTTP challenge"
            reserved[443] = "port 443, which the ACME CA (Let's Encrypt) needs for its TLS-ALPN challenge"
        return reserved


@dataclass(frozen=True)
class Inventory:
    path: Path
    model: InventoryModel
    hosts: tuple[Host, ...]
    roster: roster_mod.Roster | None = None
    defaults: tuple[Any, ...] = ()  # every value the file left out, as filled in (inventory/defaults.py's Default)

    @property
    def server_count(self) -> int:
        """Servers in the whole fleet: the listed hosts and the droplets to create."""
        return len(self.hosts) + (self.model.digitalocean.count if self.model.digitalocean else 0)

    @property
    def seat_count(self) -> int:
        """Seats in the whole fleet: every host gets every service's seats."""
        return self.server_count * sum(s.seats for s in self.services)

    @property
    def droplet_key(self) -> tuple[Path, Path] | None:
        """The droplets' SSH key: (public key file, private key file), checked to exist by load()."""
        if self.model.digitalocean is None:
            return None
        public = (self.path.parent / Path(self.model.digitalocean.ssh_key).expanduser()).resolve()
        return public, public.with_suffix("")

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def services(self) -> list[Service]:
        return self.model.services

    @property
    def timeouts(self) -> Timeouts:
        return self.model.timeouts
