"""The handout: every seat's address and credentials, for the teacher to share.

Built from the state (where the credentials live) and the inventory (which
seats exist), without contacting any host. This is the one output that shows
secrets, so files are written with mode 0600.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from fleet.inventory import Inventory
from fleet.report import table
from fleet.seats import expand
from fleet.state import State

FIELDS = ["host", "service", "seat", "url", "user", "secret", "login_url"]


def rows(inventory: Inventory, state: State) -> list[dict[str, object]]:
    """One row a seat that has credentials in the state."""
    out = []
    secrets = state.data["secrets"]
    for host in inventory.hosts:
        for seat in expand(inventory):
            secret = secrets.get(host.id, {}).get(seat.container)
            if secret is None:
                continue
            out.append({
                "host": host.id, "service": seat.service.name, "seat": seat.number,
                "url": seat.url(host.address), "user": seat.service.login_user,
                "secret": secret, "login_url": seat.url(host.address, secret),
            })
    return out


def render(data: list[dict[str, object]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(data)
        return buf.getvalue()
    return table(["HOST", "SEAT", "USER", "PASSWORD/TOKEN", "LOGIN"],
                 [[r["host"], f"{r['service']}-{r['seat']}", r["user"] or "-", r["secret"], r["login_url"]] for r in data]) + "\n"


def write_private(path: Path, text: str) -> None:
    """Create or replace a file readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
