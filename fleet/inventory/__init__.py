"""The inventory: the teacher's YAML file, validated into typed data.

Nothing touches a network before the whole file is valid, and every error
names the file, the line and the field, and says what would be valid. Unknown
keys are errors, because a typo that is silently ignored (``sets: 30``) costs a
workshop. The schema is strict: YAML turns ``no`` into False and ``0755`` into
493, so a value of the wrong type is refused rather than coerced.

One module per section of the file, each with its defaults and checks (ssh,
hosts, services, tls for ``tls:`` and ``proxy:``, cloud for
``digitalocean:``, students for ``roster:``), the things they share in base,
the top level and the loaded :class:`Inventory` in model, and the reading of
the file with its error wording in loader. Imports go one way: base, the
sections, model, students, loader. This package re-exports what the rest of
fleet uses, so ``from fleet.inventory import Host`` and ``inventory.load(...)``
need not know the layout.
"""
from __future__ import annotations

from fleet.inventory.base import HOSTNAME_RE, IMAGE_RE, LABEL_, USER_RE, Model, Path_
from fleet.inventory.cloud import SLUG_RE, TOKEN_KEYS, TOKEN_VALUE_RE, DigitalOceanSettings
from fleet.inventory.hosts import Host, HostEntry
from fleet.inventory.loader import MAX_FILE_BYTES, YAML11_OCTAL, YAML11_SEXAGESIMAL, line_of, load
from fleet.inventory.model import NAME_RE, DockerSettings, HandoutSettings, Inventory, InventoryModel, Timeouts
from fleet.inventory.services import (
    CPUSET_RE,
    ENV_KEY_RE,
    MEMORY_RE,
    SERVICE_RE,
    UNITS,
    Service,
    parse_cpuset,
    parse_memory,
    parse_size,
)
from fleet.inventory.ssh import SSHSettings
from fleet.inventory.tls import ProxySettings, TLSSettings

__all__ = [
    "CPUSET_RE", "ENV_KEY_RE", "HOSTNAME_RE", "IMAGE_RE", "LABEL_", "MAX_FILE_BYTES", "MEMORY_RE", "NAME_RE",
    "SERVICE_RE", "SLUG_RE", "TOKEN_KEYS", "TOKEN_VALUE_RE", "UNITS", "USER_RE", "YAML11_OCTAL",
    "YAML11_SEXAGESIMAL",
    "DigitalOceanSettings", "DockerSettings", "HandoutSettings", "Host", "HostEntry", "Inventory",
    "InventoryModel", "Model", "Path_", "ProxySettings", "SSHSettings", "Service", "TLSSettings", "Timeouts",
    "line_of", "load", "parse_cpuset", "parse_memory", "parse_size",
]
