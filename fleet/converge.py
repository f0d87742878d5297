"""The workflows behind the tasks: provision, plan, status, teardown.

Each is the same shape: prepare everything that needs no network (inventory,
credentials, this computer's image ids), rent servers if the inventory says
so, then hand the hosts to the backend of the inventory's ``mode:``
(fleet/backends/), which works on each host over its one connection in one
bounded, fail-slow fan-out.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable

from fleet import firstboot, proxy
from fleet import relay as relay_mod
from fleet.backends.base import Provisioning
from fleet.backends.registry import backend_for
from fleet.cloud import settings_of
from fleet.errors import HostError, InputError
from fleet.inventory import Host, Inventory
from fleet.local import local_image_id, local_image_size
from fleet.report import HostReport
from fleet.runner import Outcome
from fleet.servers import lifecycle
from fleet.session import Session
from fleet.ssh import Remote


def local_ids(inventory: Inventory) -> dict[str, str]:
    """This computer's ids of the images it sends (push: true), checked before any host is touched."""
    try:
        return {image: local_image_id(image) for image in backend_for(inventory).images_to_send(inventory)}
    except HostError as e:
        raise InputError(str(e)) from None


def provision(session: Session, *, dry_run: bool = False, confirm: lifecycle.Confirm | None = None,
              hosts: tuple[Host, ...] | None = None, only: set[str] | None = None,
              prepare: Callable[[Host, Remote], None] | None = None,
              ready_timeout: int | None = None) -> list[Outcome[Host, HostReport]]:
    """Bring every host to the inventory; with dry_run, only probe and plan.

    With a cloud block, the servers are created or adopted first (``confirm``
    is asked before any is created or destroyed) and join the hosts; a server
    that never became usable is a failed row of its own. The dry run looks
    only at the servers the state already knows.

    For the classroom tasks: ``hosts`` limits the run to those hosts (no
    server is created or destroyed), ``only`` to those containers (others
    are left as they are, even if their spec changed), and ``prepare`` acts
    on each host's connection before its facts are gathered.

    A host is done when every seat started or replaced there answers as a
    student's browser would ask it (fleet/ready.py), each within its
    ``ready_timeout`` (or the one given here); a seat that stops or never
    answers fails its host with the reason.
    """
    inv = session.inventory
    for warning in proxy.warnings(inv):
        session.progress(f"WARNING: {warning}")
    ids = local_ids(inv)
    failed_servers: list[Outcome[Host, HostReport]] = []
    cloud = settings_of(inv)
    if cloud is not None and not dry_run and hosts is None:
        # Docker installs while each new server boots (cloud-init); SSH installs it where that did not happen
        first_boot = firstboot.user_data(cloud[1].image, inv.model.docker.source)
        failed_servers = lifecycle.ensure(session, confirm or lifecycle.refuse, user_data=first_boot)
    hosts = session.hosts if hosts is None else hosts
    # push: true sends each image out of this computer once; the hosts pass it on as it arrives
    relay = relay_mod.Relay(session, inv.name, ids, hosts, inv.timeouts.command,
                            {image: local_image_size(image) for image in ids})
    run = Provisioning(session, hosts, relay, ids, dry_run=dry_run, only=only, prepare=prepare,
                       ready_timeout=ready_timeout)
    try:
        outcomes = backend_for(inv).provision(run) + failed_servers
    finally:
        relay.close()
        if os.environ.get("FLEET_STATS"):  # benchmarks/: counts of this run, as JSON
            with open(os.environ["FLEET_STATS"], "w") as f:
                json.dump({**session.stats(), **relay.stats()}, f, indent=1)
    return outcomes


def status(session: Session) -> list[Outcome[Host, HostReport]]:
    """How every host and seat is doing, as the inventory's backend tells it."""
    return backend_for(session.inventory).status(session)


def teardown(session: Session, *, keep_work: bool = False) -> list[Outcome[Host, HostReport]]:
    """Remove what the fleet made on the inventory's own hosts (rented servers are destroyed whole)."""
    return backend_for(session.inventory).teardown(session, keep_work=keep_work)
