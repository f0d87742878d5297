"""The ``mode:`` and ``hub:`` sections: the whole class at one address, JupyterHub on Docker Swarm.

``mode: seats`` (the default) runs fixed seats per host. ``mode: hub`` forms a
Swarm of the hosts and runs JupyterHub on the manager: every student logs in
at one HTTPS address with their own name and password, and Swarm starts their
server on the node with the most room (fleet/backends/hub.py). The one
``jupyter`` service names the students' server image and its limits.
"""
from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from fleet.inventory.base import Model, check_image, check_user

DURATION_RE = re.compile(r"^(\d+)\s*(s|m|h)?$")
UNIT = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(value: str | int) -> int:
    """'30m', '2h', '90s', 90 → seconds."""
    if isinstance(value, int):
        return value
    m = DURATION_RE.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not a duration; write e.g. 30m, 2h or 90s (0 turns idle culling off)")
    return int(m.group(1)) * UNIT[m.group(2) or ""]


class HubSection(Model):
    """How the hub serves the class (``mode: hub`` only)."""

    manager: str | None = None  # the host that runs the hub and the class address; default: the first host
    users: str | list[Any] | None = None  # the students, as a CSV file or names (like roster:); default: roster:
    idle_timeout: str | int = "30m"  # a student's server stops after this long idle (jupyterhub-idle-culler); 0: never
    admin: str | None = None  # the teacher's own login (an admin of the hub, with a generated password)
    port: int = Field(443, ge=1, le=65535)  # the class address's port on the manager
    image: str | None = None  # the hub's image; default: built on the manager from the official JupyterHub image
    push: bool = False  # send the hub's image from this computer instead
    start_timeout: int = Field(300, ge=10, le=3600)  # seconds for a student's server to start (a first pull is slow)

    @field_validator("idle_timeout")
    @classmethod
    def _idle(cls, v: str | int) -> str | int:
        if isinstance(v, int) and v < 0:
            raise ValueError("must not be negative; 0 turns idle culling off")
        parse_duration(v)
        return v

    @field_validator("users", mode="before")
    @classmethod
    def _users(cls, v: Any) -> Any:
        if v is not None and not isinstance(v, str | list):
            raise ValueError("must be a CSV file (users: students.csv) or a list of names")
        return v

    _admin = field_validator("admin")(lambda v: check_user(v) if v else v)
    _image = field_validator("image")(lambda v: check_image(v) if v else v)

    @property
    def idle_seconds(self) -> int:
        return parse_duration(self.idle_timeout)
