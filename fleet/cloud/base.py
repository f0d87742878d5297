"""What every cloud provider gives the rest of fleet: plain data, the errors, and the Provider protocol."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fleet.errors import FleetError


class CloudError(FleetError):
    """The provider refused a request or could not be reached; the message says which and why."""


class Uncertain(CloudError):
    """A request that changes something failed in a way that leaves unknown whether it took effect.

    A 5xx or a broken connection after a create may come after the provider
    created the servers. Retrying blindly would create them twice, so the
    caller looks (lists by tag) before it tries again.
    """


@dataclass(frozen=True)
class Server:
    id: int
    name: str
    status: str  # new | active | off | archive (the provider's words, "active" meaning running)
    public_ipv4: str | None
    tags: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        """Active with a public IPv4: the API's side of "ready" (SSH is checked separately)."""
        return self.status == "active" and self.public_ipv4 is not None


@dataclass(frozen=True)
class Size:
    slug: str
    price_hourly: float
    price_monthly: float
    regions: tuple[str, ...]
    available: bool
    vcpus: int
    memory: int  # MB
    description: str = ""


@dataclass(frozen=True)
class Key:
    """An SSH public key registered in the account."""

    id: int
    fingerprint: str
    name: str


class Provider(Protocol):
    """What fleet needs of a cloud: create in batches, list by tag, destroy, price, register a key."""

    name: str  # the inventory block and the state's section: "digitalocean"
    label: str  # for people: "DigitalOcean"
    noun: str  # what it calls a server: "droplet"
    max_batch: int  # names per create request
    settings: Any  # the inventory block: count, region, size, image, ssh_key, user

    def servers(self, tag: str) -> list[Server]: ...
    def server(self, server_id: int) -> Server | None: ...
    def create(self, names: Sequence[str], *, key_id: int, tag: str, user_data: str | None = None) -> list[Server]: ...
    def destroy(self, server_id: int) -> bool: ...
    def destroy_tagged(self, tag: str) -> None: ...
    def sizes(self) -> list[Size]: ...
    def keys(self) -> list[Key]: ...
    def add_key(self, name: str, public_key: str) -> Key: ...
    def delete_key(self, key_id: int) -> None: ...
    def fingerprint(self, public_key: str) -> str: ...
