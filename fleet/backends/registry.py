"""Which backend serves an inventory: its ``mode:``."""
from __future__ import annotations

from fleet.backends import hub, seats
from fleet.backends.base import Backend
from fleet.inventory import Inventory

BACKENDS: dict[str, Backend] = {"seats": seats, "hub": hub}  # type: ignore[dict-item]  # modules with the Backend's functions


def backend_for(inventory: Inventory) -> Backend:
    return BACKENDS[inventory.model.mode]
