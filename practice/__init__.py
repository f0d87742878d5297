"""The practice fleet: real test servers on this machine.

Each practice server is a Docker container that boots systemd, runs OpenSSH and
can run its own Docker engine (see images/testhost and
/work/shared/notes/TEST-HOSTS.md). Used by the tests' fixtures and by
``make demo`` (``python -m practice up``).
"""
from __future__ import annotations

from practice.hosts import TestHost, host_addresses, make_keypair, remove_hosts, start_hosts
from practice.images import (
    BASE_IMAGE,
    JUPYTER_IMAGE,
    TESTHOST_IMAGE,
    ensure_base_image,
    ensure_jupyter_image,
    ensure_testhost_image,
)

__all__ = [
    "BASE_IMAGE",
    "JUPYTER_IMAGE",
    "TESTHOST_IMAGE",
    "TestHost",
    "ensure_base_image",
    "ensure_jupyter_image",
    "ensure_testhost_image",
    "host_addresses",
    "make_keypair",
    "remove_hosts",
    "start_hosts",
]
