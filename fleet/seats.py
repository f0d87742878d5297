"""Seats: the containers a fleet wants on every host, expanded from the services.

Expansion is deterministic (seat n of a service always gets port publish+n-1
and the same container name), so a re-run finds the same seats and a student
keeps their seat. Credentials are generated once, kept in the state, and only
ever travel inside an env file.
"""
from __future__ import annotations

import hashlib
import json
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

    @property
    def container(self) -> str:
        return f"{self.fleet}-{self.service.name}-{self.number}"

    @property
    def host_port(self) -> int:
        return self.service.publish + self.number - 1

    @property
    def env_path(self) -> str:
        return f"/etc/fleet/{self.fleet}/{self.container}.env"

    def env_file(self, secret: str) -> bytes:
        """The --env-file content: one KEY=value line each, taken literally by Docker."""
        env = {k: str(v) for k, v in self.service.env.items()}
        env[self.service.login_secret_env] = secret
        return "".join(f"{k}={v}\n" for k, v in env.items()).encode()

    def spec_hash(self, secret: str) -> str:
        """A digest of everything that shapes the container; a changed digest means replace it.

        The secret is part of it (so new credentials reach the seat) but only
        through a one-way hash of a 128-bit random value, so the label reveals
        nothing.
        """
        s = self.service
        spec = {
            "image": s.image, "port": s.container_port, "host_port": self.host_port,
            "memory": s.memory_bytes, "cpus": s.cpus, "cpuset": s.cpuset,
            "env": hashlib.sha256(self.env_file(secret)).hexdigest(),
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def url(self, address: str, secret: str | None = None) -> str:
        """The address a student opens; with the secret, the one-click login link."""
        host = f"[{address}]" if ":" in address else address
        base = f"http://{host}:{self.host_port}/"
        if secret and self.service.kind == "jupyter":
            return f"{base}?token={secret}"
        return base


def expand(inventory: Inventory) -> list[Seat]:
    """Every seat every host gets, in a stable order."""
    return [Seat(inventory.name, svc, n) for svc in inventory.services for n in range(1, svc.seats + 1)]


def new_secret() -> str:
    """128 random bits as 32 hex digits: safe in a URL, easy to read aloud."""
    return secrets.token_hex(16)
