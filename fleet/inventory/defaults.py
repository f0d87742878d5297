"""What an inventory leaves out: the values fleet fills in, and the list of them that `fab plan` shows.

Pure: a validated model in, a completed model and the filled-in values out.
A service's kind (fleet/kinds.py) supplies its image, its port and its
seats' memory and CPU limits; ``publish`` is the first block of ``seats``
consecutive host ports from :data:`FIRST_PORT` that no other service's seats
and no reserved port (SSH, port 80 for Let's Encrypt) take, the services
that name their ports being placed first. So the smallest inventory a teacher
writes (name, hosts, one service with a name) is complete and safe.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from fleet.inventory.base import Path_, dotted
from fleet.inventory.model import InventoryModel
from fleet.inventory.services import Service

FIRST_PORT = 8000  # seat ports fleet picks start here: above the well-known ports, clear of 80/443
LAST_PORT = 65535


@dataclass(frozen=True)
class Default:
    """One value the inventory left out, as fleet fills it in."""

    path: Path_
    value: Any

    def __str__(self) -> str:
        return f"{dotted(self.path)} = {shown(self.value)}"


def shown(value: Any) -> str:
    """A value as it would be written in the YAML file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def first_free_block(seats: int, taken: Iterable[int], start: int = FIRST_PORT) -> int | None:
    """The lowest port P >= start such that P .. P+seats-1 are all free; None when none fits below 65536."""
    busy = set(taken)
    port = start
    while port + seats - 1 <= LAST_PORT:
        clash = [p for p in range(port, port + seats) if p in busy]
        if not clash:
            return port
        port = max(clash) + 1
    return None


def fill(model: InventoryModel) -> tuple[InventoryModel, tuple[Default, ...]]:
    """The model with every service's left-out values filled in, and every value the file left out."""
    taken = set(model.reserved_ports())
    for svc in model.services:
        taken.update(svc.host_ports)  # the ports the file names are placed first
    services = []
    for svc in model.services:
        update = service_defaults(svc)
        if svc.publish is None:
            publish = first_free_block(svc.seat_ports, taken)
            if publish is not None:  # None: no room left (thousands of services); the loader says so
                update["publish"] = publish
                taken.update(range(publish, publish + svc.seat_ports))
        services.append(svc.model_copy(update=update) if update else svc)
    filled = model.model_copy(update={"services": services})
    found = list(unwritten(model, filled))  # the services' values first: they are the ones a teacher asks about
    return filled, tuple(sorted(found, key=lambda d: d.path[0] != "services"))


def service_defaults(svc: Service) -> dict[str, Any]:
    """What a service's kind fills in where the service says nothing (an explicit `none` stays none)."""
    kind, given, update = svc.kind_of, svc.model_fields_set, {}
    if svc.image is None and kind.image:
        update["image"] = kind.image
    if svc.port is None and kind.port:
        update["port"] = kind.port
    if "memory" not in given and kind.memory:
        update["memory"] = kind.memory
    if "cpus" not in given and "cpuset" not in given and kind.cpus:
        update["cpus"] = kind.cpus
    return update


def unwritten(model: BaseModel, filled: BaseModel, path: Path_ = ()) -> Iterable[Default]:
    """Every value the file did not write (walking ``model`` as read, taking values from ``filled``):
    leaves only, and only those with a value (not None, not empty)."""
    for name in type(model).model_fields:
        value, value_filled = getattr(model, name), getattr(filled, name)
        here = (*path, name)
        if isinstance(value, BaseModel):
            yield from unwritten(value, value_filled, here)
        elif isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
            for i, (item, item_filled) in enumerate(zip(value, value_filled, strict=True)):
                yield from unwritten(item, item_filled, (*here, i))
        elif name not in model.model_fields_set and value_filled not in (None, "", [], {}, ()):
            yield Default(here, value_filled)
