"""plan(facts, seats) → Steps: the whole decision of what to do to one host.

Pure: it reads Facts and the wanted seats and returns Steps; nothing here
touches a network. A host that already matches gets an empty list, so a
re-run costs one probe and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass

from fleet import commands, install
from fleet.errors import HostError
from fleet.facts import Facts
from fleet.inventory import Inventory, parse_cpuset
from fleet.seats import Seat
from fleet.steps import PushImage, Run, Step, Upload


@dataclass(frozen=True)
class Wanted:
    """A seat with its credential, as planning needs it."""

    seat: Seat
    secret: str

    @property
    def spec(self) -> str:
        return self.seat.spec_hash(self.secret)


def images_of(wanted: list[Wanted]) -> list[str]:
    return list(dict.fromkeys(w.seat.service.image for w in wanted))


def docker_steps(inventory: Inventory, facts: Facts) -> list[Step]:
    """Install and start Docker where it is missing; nothing where it answers."""
    if facts.docker_running:
        return []
    if facts.docker_installed:
        return install.start_docker_steps(facts.systemd)
    return install.docker_install_steps(
        facts.distro(), inventory.model.docker.source, arch=facts.arch, systemd=facts.systemd,
        timeouts=inventory.timeouts,
    )


def image_steps(inventory: Inventory, facts: Facts, wanted: list[Wanted], local_ids: dict[str, str]) -> list[Step]:
    """Push (when the host's copy differs from the controller's) or pull (when absent)."""
    steps: list[Step] = []
    pushed = {w.seat.service.image for w in wanted if w.seat.service.push}
    for image in images_of(wanted):
        have = facts.images.get(image, "")
        if image in pushed:
            if have != local_ids[image]:
                steps.append(PushImage(f"send image {image} from this computer", image, inventory.timeouts.push))
        elif not have:
            steps.append(Run(f"pull image {image}", commands.pull(image), inventory.timeouts.push))
    return steps


def check_host(facts: Facts, wanted: list[Wanted]) -> None:
    """Refuse, with one clear line, what cannot work on this host."""
    ours = {name for name in facts.containers}
    for w in wanted:
        svc = w.seat.service
        if svc.cpuset and max(parse_cpuset(svc.cpuset)) >= facts.cpus > 0:
            raise HostError(
                f"service {svc.name}: cpuset {svc.cpuset} names CPU {max(parse_cpuset(svc.cpuset))}, "
                f"but this host has {facts.cpus} CPUs (0-{facts.cpus - 1})"
            )
        if w.seat.host_port in facts.ports_in_use and w.seat.container not in ours:
            raise HostError(
                f"port {w.seat.host_port} (seat {w.seat.container}) is already used by another program on this host"
            )


def seat_steps(facts: Facts, wanted: list[Wanted], image_ids: dict[str, str], timeout: int) -> list[Step]:
    """Remove what is no longer wanted, replace what changed, start what stopped, run what is missing."""
    steps: list[Step] = []

    def run(title: str, argv: tuple[str, ...]) -> Run:
        return Run(title, argv, timeout)

    names = {w.seat.container for w in wanted}
    for name in sorted(set(facts.containers) - names):
        steps.append(run(f"remove seat {name} (no longer in the inventory)", commands.remove(name)))
        steps.append(run(f"remove env file of {name}", commands.remove_files(_env_path(facts, name))))
    for w in wanted:
        seat, have = w.seat, facts.containers.get(w.seat.container)
        image_id = image_ids.get(seat.service.image, "")
        if have and have.labels.get("fleet.spec") == w.spec and (not image_id or have.image_id == image_id):
            if have.state != "running":
                steps.append(run(f"start seat {seat.container} (was {have.state})", commands.start(seat.container)))
            continue
        if have:
            steps.append(run(f"remove seat {seat.container} to replace it (spec changed)", commands.remove(seat.container)))
        steps.append(Upload(f"write env file of {seat.container}", seat.env_path, seat.env_file(w.secret), 0o600, timeout))
        steps.append(run(f"run seat {seat.container} on port {seat.host_port}", commands.run_seat(seat, w.spec)))
    return steps


def _env_path(facts: Facts, name: str) -> str:
    fleet = facts.containers[name].labels.get("fleet.name", "")
    return f"/etc/fleet/{fleet}/{name}.env"


def plan(inventory: Inventory, facts: Facts, wanted: list[Wanted], local_ids: dict[str, str]) -> list[Step]:
    """Everything one host needs, in order; [] when it already matches.

    ``local_ids`` are the controller's image ids for pushed images: after a
    push, the host's image id equals the controller's, which is what seats
    must run.
    """
    check_host(facts, wanted)
    steps = docker_steps(inventory, facts)
    steps += image_steps(inventory, facts, wanted, local_ids)
    after_push = {**facts.images, **{i: local_ids[i] for i in local_ids}}
    steps += seat_steps(facts, wanted, after_push, inventory.timeouts.command)
    return steps
