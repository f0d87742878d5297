"""Seats: the containers a fleet wants on every host, expanded from the services.

Expansion is deterministic (seat n of a service always gets port publish+n-1
and the same container name), so a re-run finds the same seats and a student
keeps their seat. Credentials are generated once, kept in the state, and only
ever travel inside an env file.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from fleet.inventory import Inventory, Service

LABEL = "fleet.name"  # the label every container of a fleet carries; status and teardown find them by it


@dataclass(frozen=True)
class Seat:
    """One container wanted on one host, without its secret."""

    fleet: str
    service: Service
    number: int  # 1-based, as a teacher counts
    https: bool = True  # served by the host's TLS proxy (tls is not off)

    @property
    def container(self) -> str:
        return f"{self.fleet}-{self.service.name}-{self.number}"

    @property
    def spare(self) -> bool:
        """A spare seat (numbered after the service's ``seats``): started and held, never given to a new
        student; ``fab move`` puts a student there."""
        return self.number > self.service.seats

    @property
    def host_port(self) -> int:
        return self.service.publish + self.number - 1

    @property
    def volume(self) -> str:
        """The named volume holding the seat's work directory."""
        return f"{self.container}-work"

    @property
    def env_path(self) -> str:
        return f"/etc/fleet/{self.fleet}/{self.container}.env"

    def env_file(self, secret: str) -> bytes:
        """The --env-file content: one KEY=value line each, taken literally by Docker."""
        env = {k: str(v) for k, v in self.service.env.items()}
        env[self.service.login_secret_env] = secret
        return "".join(f"{k}={v}\n" for k, v in env.items()).encode()

    def url(self, name: str, secret: str | None = None) -> str:
        """The address a student opens; with the secret, the one-click login link."""
        host = f"[{name}]" if ":" in name else name
        return self.service.kind_of.login_link(f"{'https' if self.https else 'http'}://{host}:{self.host_port}/", secret)


def network_name(fleet: str) -> str:
    """The private network that joins a fleet's seats and its proxy on each host."""
    return f"{fleet}-seats"


def expand(inventory: Inventory) -> list[Seat]:
    """Every seat every host gets, in a stable order: service by service, seat by seat, its spares last."""
    https = inventory.model.tls.mode != "off"
    return [Seat(inventory.name, svc, n, https) for svc in inventory.services for n in range(1, svc.seat_ports + 1)]


def new_secret() -> str:
    """128 random bits as 32 hex digits: safe in a URL, easy to read aloud."""
    return secrets.token_hex(16)
