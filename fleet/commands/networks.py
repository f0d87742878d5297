"""The fleet's private networks."""
from __future__ import annotations

from fleet.seats import LABEL


def network_create(name: str, fleet: str) -> tuple[str, ...]:
    return ("docker", "network", "create", "--label", f"{LABEL}={fleet}", name)


def network_remove(name: str) -> tuple[str, ...]:
    return ("sh", "-c", 'docker network rm "$1" >/dev/null 2>&1 || true', "sh", name)
