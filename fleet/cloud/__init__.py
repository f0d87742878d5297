"""Cloud providers: where servers come from when a teacher rents them for the day.

A provider is the edge to one cloud's API. The rest of fleet sees only what
is here: the plain data classes, the errors, and :class:`Provider`, which
every provider implements (DigitalOcean is the first: fleet/cloud/digitalocean.py).
What to create, in which batches, what it costs, when a server is usable and
how teardown makes sure nothing is left running is decided once, for every
provider, in fleet/servers/.

Adding a provider: a module here with a class that satisfies
:class:`Provider`, its inventory block (fleet/inventory/cloud.py), and one
line in :func:`provider_for`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fleet.cloud.base import CloudError, Key, Provider, Server, Size, Uncertain

if TYPE_CHECKING:
    from fleet.inventory import Inventory


def settings_of(inventory: Inventory) -> tuple[str, Any] | None:
    """The inventory's cloud block, as (provider name, settings), or None when it rents no servers."""
    if inventory.model.digitalocean is not None:
        return "digitalocean", inventory.model.digitalocean
    return None


def provider_for(inventory: Inventory, progress: Callable[[str], None] | None = None) -> Provider | None:
    """The provider of the inventory's cloud block, checked to have its token, or None."""
    found = settings_of(inventory)
    if found is None:
        return None
    from fleet.cloud.digitalocean import DigitalOcean  # its client library loads only when a cloud is used

    return DigitalOcean(found[1], progress=progress)


__all__ = ["CloudError", "Key", "Provider", "Server", "Size", "Uncertain", "provider_for", "settings_of"]
