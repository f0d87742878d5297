"""The seam every backend implements: one provision run as handed over, and the Backend protocol."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from fleet.inventory import Host, Inventory
from fleet.relay import Relay
from fleet.report import HostReport
from fleet.runner import Outcome
from fleet.session import Session
from fleet.ssh import Remote


@dataclass
class Provisioning:
    """One provision run, as the workflow hands it to a backend."""

    session: Session
    hosts: tuple[Host, ...]
    relay: Relay
    local_ids: dict[str, str]  # image → this computer's id, for images sent from here (push: true)
    dry_run: bool = False
    only: set[str] | None = None  # classroom tasks: just these containers
    prepare: Callable[[Host, Remote], None] | None = None  # classroom tasks: before the facts are gathered
    ready_timeout: int | None = None  # overrides every seat's ready_timeout (upgrade --wait)


class Backend(Protocol):
    def images_to_send(self, inventory: Inventory) -> list[str]:
        """Images this computer sends (push: true), checked to exist before any host is touched."""
        ...

    def provision(self, run: Provisioning) -> list[Outcome[Host, HostReport]]: ...

    def status(self, session: Session) -> list[Outcome[Host, HostReport]]: ...

    def teardown(self, session: Session, *, keep_work: bool) -> list[Outcome[Host, HostReport]]: ...
