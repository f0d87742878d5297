"""The workflows behind the tasks: provision, plan, status, teardown.

Each is the same shape: prepare everything that needs no network (inventory,
credentials, local image ids), then one fan-out over the hosts where each host
is probed once, planned purely, and acted on over its one connection.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fleet import commands
from fleet import facts as facts_mod
from fleet import plan as plan_mod
from fleet.errors import HostError, InputError
from fleet.facts import Facts
from fleet.inventory import Host, Inventory
from fleet.plan import Wanted
from fleet.runner import Outcome, fan_out
from fleet.seats import expand, new_secret
from fleet.ssh import HostKeys, Remote, local_image_id
from fleet.state import State, path_for
from fleet.steps import Run, Step

Progress = Callable[[str], None]


@dataclass
class SeatReport:
    container: str
    service: str
    number: int
    url: str
    state: str  # running | exited | ... | missing
    restarts: int = 0


@dataclass
class HostReport:
    host: Host
    os: str = ""
    docker: str = ""
    steps: list[Step] = field(default_factory=list)
    seats: list[SeatReport] = field(default_factory=list)
    seconds: float = 0.0
    round_trips: int = 0
    removed: list[str] = field(default_factory=list)


class Session:
    """One command's view of a fleet: the inventory, its state and the SSH trust store."""

    def __init__(self, inventory: Inventory, *, sudo_password: str | None = None,
                 accept_new_host_key: bool = False, progress: Progress | None = None):
        self.inventory = inventory
        self.state = State.load(path_for(inventory.path, inventory.name), inventory.name)
        self.keys = HostKeys(self.state.data["host_keys"], accept_new=accept_new_host_key)
        self.sudo_password = sudo_password
        self.progress = progress or (lambda line: None)

    def wanted(self, host: Host) -> list[Wanted]:
        return [Wanted(seat, self.state.secret(host.id, seat.container, new_secret)) for seat in expand(self.inventory)]

    def connect(self, host: Host) -> Remote:
        remote = Remote(host, self.keys, connect_timeout=self.inventory.timeouts.connect,
                        sudo_password=self.sudo_password)
        self._save_pins()
        return remote

    def _save_pins(self) -> None:
        with self.keys.lock, self.state.lock:
            if self.state.data["host_keys"] != self.keys.pinned:
                self.state.data["host_keys"] = dict(self.keys.pinned)
                self.state.save()

    def gather(self, remote: Remote, images: list[str]) -> Facts:
        step = facts_mod.probe(self.inventory.name, images, self.inventory.timeouts.command)
        result = remote.run(step.argv, timeout=step.timeout)
        try:
            return facts_mod.parse(result.stdout)
        except (ValueError, KeyError) as e:
            raise HostError(f"could not read the host's facts: {e}") from None

    def fan_out(self, work: Callable[[Host], HostReport]) -> list[Outcome[Host, HostReport]]:
        return fan_out(self.inventory.hosts, work, parallel=self.inventory.model.parallel,
                       label=lambda h: h.id, progress=self.progress)


def seat_reports(host: Host, facts: Facts, wanted: list[Wanted]) -> list[SeatReport]:
    out = []
    for w in wanted:
        c = facts.containers.get(w.seat.container)
        out.append(SeatReport(w.seat.container, w.seat.service.name, w.seat.number, w.seat.url(host.address),
                              c.state if c else "missing", c.restarts if c else 0))
    return out


def local_ids(inventory: Inventory) -> dict[str, str]:
    """Controller-side image ids for services with push: true, checked before any host is touched."""
    try:
        return {s.image: local_image_id(s.image) for s in inventory.services if s.push}
    except HostError as e:
        raise InputError(str(e)) from None


def provision(session: Session, *, dry_run: bool = False) -> list[Outcome[Host, HostReport]]:
    """Bring every host to the inventory; with dry_run, only probe and plan."""
    inv = session.inventory
    ids = local_ids(inv)
    wanted = {h.id: session.wanted(h) for h in inv.hosts}
    session.state.save()  # credentials exist locally before any host can hold them

    def work(host: Host) -> HostReport:
        started = time.monotonic()
        with session.connect(host) as remote:
            report = HostReport(host)
            images = plan_mod.images_of(wanted[host.id])
            facts = session.gather(remote, images)
            report.os, report.docker = facts.os_name, facts.docker_state
            report.steps = plan_mod.plan(inv, facts, wanted[host.id], ids)
            if not dry_run and report.steps:
                for step in report.steps:
                    session.progress(f"  {host.id}: {step.title}")
                    remote.apply(step)
                facts = session.gather(remote, images)
                report.docker = facts.docker_state
            report.seats = seat_reports(host, facts, wanted[host.id])
            report.round_trips = remote.round_trips
        report.seconds = time.monotonic() - started
        if not dry_run:
            broken = [s for s in report.seats if s.state != "running"]
            if broken:
                raise HostError(", ".join(f"seat {s.container} is {s.state}" for s in broken)
                                + " after provisioning; see `docker logs` on the host")
        return report

    return session.fan_out(work)


def status(session: Session) -> list[Outcome[Host, HostReport]]:
    """Probe every host once and report each seat's container state."""
    def work(host: Host) -> HostReport:
        with session.connect(host) as remote:
            facts = session.gather(remote, [])
            report = HostReport(host, os=facts.os_name, docker=facts.docker_state)
            report.seats = seat_reports(host, facts, session.wanted(host))
            extra = sorted(set(facts.containers) - {s.container for s in report.seats})
            report.seats += [SeatReport(n, facts.containers[n].labels.get("fleet.service", "?"), 0, "",
                                        f"{facts.containers[n].state} (not in inventory)") for n in extra]
            report.round_trips = remote.round_trips
        return report

    return session.fan_out(work)


def teardown(session: Session) -> list[Outcome[Host, HostReport]]:
    """Remove every container the fleet labelled on each host, and their env files.

    Docker itself and the images stay installed: they cost nothing when idle
    and make a re-provision fast. The seats' credentials are dropped from the
    state, so a new fleet gets new ones.
    """
    name, timeout = session.inventory.name, session.inventory.timeouts.command

    def work(host: Host) -> HostReport:
        with session.connect(host) as remote:
            facts = session.gather(remote, [])
            report = HostReport(host, os=facts.os_name, docker=facts.docker_state)
            for container in sorted(facts.containers):
                remote.apply(Run(f"remove {container}", commands.remove(container), timeout))
                report.removed.append(container)
            remote.apply(Run("remove env files", commands.remove_tree(f"/etc/fleet/{name}"), timeout))
            report.round_trips = remote.round_trips
        session.state.forget_host(host.id)
        session.state.save()
        return report

    return session.fan_out(work)
