"""plan(facts, wanted) → Steps: the whole decision of what to do to one host.

Pure: it reads Facts and the wanted containers and returns Steps; nothing
here touches a network. A host that already matches gets an empty list, so a
re-run costs one probe and nothing else.
"""
from __future__ import annotations

from fleet import commands, coursedata, firewall, install
from fleet.desired import Wanted, volumes
from fleet.errors import HostError
from fleet.facts import Facts
from fleet.filesync import Manifest
from fleet.inventory import Inventory, parse_cpuset
from fleet.seats import expand, network_name
from fleet.steps import PushImage, Run, Step


def images_of(wanted: list[Wanted]) -> list[str]:
    return list(dict.fromkeys(w.image for w in wanted))


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
    pushed = {w.image for w in wanted if w.push}
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
    ours = {port for c in facts.containers.values() for port in c.host_ports}
    for w in wanted:
        svc = w.seat.service if w.seat else None
        if svc and svc.cpuset and max(parse_cpuset(svc.cpuset)) >= facts.cpus > 0:
            raise HostError(
                f"service {svc.name}: cpuset {svc.cpuset} names CPU {max(parse_cpuset(svc.cpuset))}, "
                f"but this host has {facts.cpus} CPUs (0-{facts.cpus - 1})"
            )
        for port in w.host_ports:
            if port in facts.ports_in_use and port not in ours:
                raise HostError(f"port {port} (for {w.name}) is already used by another program on this host")


def network_steps(inventory: Inventory, facts: Facts, timeout: int) -> list[Step]:
    name = network_name(inventory.name)
    if name in facts.networks:
        return []
    return [Run(f"create the private seat network {name}", commands.network_create(name, inventory.name), timeout)]


def container_steps(facts: Facts, wanted: list[Wanted], image_ids: dict[str, str], timeout: int,
                    only: set[str] | None = None) -> list[Step]:
    """Remove what is no longer wanted, replace what changed, start what stopped, run what is missing.

    With ``only``, just those containers are touched (a reset, a batch of an upgrade).
    """
    steps: list[Step] = []

    def run(title: str, argv: tuple[str, ...]) -> Run:
        return Run(title, argv, timeout)

    unwanted = sorted(set(facts.containers) - {w.name for w in wanted}) if only is None else []
    for name in unwanted:
        steps.append(run(f"remove {name} (no longer in the inventory)", commands.remove(name)))
        fleet = facts.containers[name].labels.get("fleet.name", "")
        steps.append(run(f"remove env file of {name}", commands.remove_files(f"/etc/fleet/{fleet}/{name}.env")))
    for w in wanted:
        if only is not None and w.name not in only:
            continue
        have = facts.containers.get(w.name)
        image_id = image_ids.get(w.image, "")
        if have and have.labels.get("fleet.spec") == w.spec and (not image_id or have.image_id == image_id):
            if have.state != "running":
                steps.append(run(f"start {w.name} (was {have.state})", commands.start(w.name)))
            continue
        if have:
            steps.append(run(f"remove {w.name} to replace it (spec changed)", commands.remove(w.name)))
        steps += w.files
        ports = f" on port{'s' * (len(w.host_ports) > 1)} {', '.join(map(str, w.host_ports))}" if w.host_ports else ""
        steps.append(run(f"run {w.name}{ports}", w.run))
    return steps


def plan(inventory: Inventory, facts: Facts, wanted: list[Wanted], local_ids: dict[str, str], *,
         ssh_port: int = 22, only: set[str] | None = None, data: dict[str, Manifest] | None = None) -> list[Step]:
    """Everything one host needs, in order; [] when it already matches.

    ``local_ids`` are the controller's image ids for pushed images: after a
    push, the host's image id equals the controller's, which is what the
    containers must run. ``data``: this computer's course data (key → its
    files, fleet/filesync.scan), sent where the host's differs before the
    seats that mount it start; None leaves course data as it is.
    """
    check_host(facts, wanted)
    steps = docker_steps(inventory, facts)
    if not facts.curl and any(w.seat for w in wanted):
        steps += install.curl_steps(facts.package_manager, inventory.timeouts)
    steps += image_steps(inventory, facts, wanted, local_ids)
    steps += network_steps(inventory, facts, inventory.timeouts.command)
    if data is not None:
        steps += coursedata.sync_steps(inventory, facts.data, data)
    after_push = {**facts.images, **local_ids}
    steps += container_steps(facts, wanted, after_push, inventory.timeouts.command, only)
    if data is not None and only is None:  # after the seats that mounted it were replaced without it
        steps += coursedata.unused_steps(inventory, facts.data)
    steps += firewall.steps(inventory, facts, [p for w in wanted for p in w.host_ports], ssh_port)
    return steps


def teardown(inventory: Inventory, facts: Facts, *, keep_work: bool = False) -> list[Step]:
    """Everything the fleet made on one host, to remove: its containers, env files, network and volumes.

    The students' files (a volume per seat) go too unless ``keep_work``.
    Docker and the images stay.
    """
    name, timeout = inventory.name, inventory.timeouts.command
    steps: list[Step] = [Run(f"remove {c}", commands.remove(c), timeout) for c in sorted(facts.containers)]
    steps.append(Run("remove env files", commands.remove_tree(f"/etc/fleet/{name}"), timeout))
    steps.append(Run("remove the course data", commands.remove_tree(coursedata.root(name)), timeout))
    steps.append(Run("remove the seat network", commands.network_remove(network_name(name)), timeout))
    gone = volumes(name)
    if not keep_work:
        seats = {c for c, f in facts.containers.items() if "fleet.seat" in f.labels}
        gone += sorted({f"{c}-work" for c in seats} | {s.volume for s in expand(inventory)})
    steps.append(Run("remove the fleet's volumes", commands.volume_remove(*gone), timeout))
    return steps
