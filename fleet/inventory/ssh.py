"""The ``ssh:`` section: how fleet logs in to every host unless a host says otherwise.

The key is a path relative to the inventory's folder; hosts.py resolves it,
together with the hosts' own keys, once the file is valid.
"""
from __future__ import annotations

from pydantic import Field, field_validator

from fleet.inventory.base import Model, check_user


class SSHSettings(Model):
    user: str = "root"
    port: int = Field(22, ge=1, le=65535)
    key: str | None = None

    _user = field_validator("user")(lambda v: check_user(v))
