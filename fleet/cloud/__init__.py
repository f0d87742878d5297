"""Cloud providers: the edge where fleet rents servers.

Only :mod:`fleet.cloud.digitalocean` talks to a provider; the rest of fleet
sees the plain data classes and errors it returns, never the provider's
client library.
"""
from __future__ import annotations

from fleet.errors import FleetError


class CloudError(FleetError):
    """The provider refused a request or could not be reached; the message says which and why."""


class Uncertain(CloudError):
    """A request that changes something failed in a way that leaves unknown whether it took effect.

    A 5xx or a broken connection after a create may come after the provider
    created the droplets. Retrying blindly would create them twice, so the
    caller looks (lists by tag) before it tries again.
    """
