"""The workflows behind the tasks: provision, plan, status, teardown.

Each is the same shape: prepare everything that needs no network (inventory,
credentials, local image ids), then one fan-out over the hosts where each host
is probed once, planned purely, and acted on over its one connection.
"""
from __future__ import annotations

import json
import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fleet import commands, desired, droplets, proxy, ready, recover, usage
from fleet import facts as facts_mod
from fleet import plan as plan_mod
from fleet import relay as relay_mod
from fleet.desired import Wanted
from fleet.errors import HostError, InputError
from fleet.facts import Facts
from fleet.inventory import Host, Inventory
from fleet.runner import Outcome, fan_out
from fleet.seats import expand, new_secret
from fleet.ssh import HostKeys, Remote, local_image_id, local_image_size
from fleet.state import State, path_for
from fleet.steps import PushImage, Run, Step, Upload

Progress = Callable[[str], None]


@dataclass
class SeatReport:
    container: str
    service: str
    number: int
    url: str
    state: str  # running | exited | ... | missing
    restarts: int = 0
    health: str = ""  # status only: does the seat answer at its URL
    cpu: str = ""  # status only: CPU % (100% = one core)
    memory: str = ""  # status only: used / limit


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
    usage: str = ""  # status only: load, memory and disk of the host


class Session:
    """One command's view of a fleet: the inventory, its state and the SSH trust store."""

    def __init__(self, inventory: Inventory, *, sudo_password: str | None = None,
                 accept_new_host_key: bool = False, progress: Progress | None = None):
        self.inventory = inventory
        self.state = State.load(path_for(inventory.path, inventory.name), inventory.name)
        self.keys = HostKeys(self.state.data["host_keys"], accept_new=accept_new_host_key)
        self.sudo_password = sudo_password
        self.progress = progress or (lambda line: None)
        self.unusable: set[str] = set()  # droplet addresses this run found unusable and left alone
        self.opened: list[Remote] = []  # every connection of this command, for its counts (stats())

    @property
    def hosts(self) -> tuple[Host, ...]:
        """Every server of the fleet: the inventory's hosts, then the droplets the state knows.

        Droplets stay part of the fleet until teardown destroys them, so status
        and plan see them without asking the cloud; provision refreshes the
        state from the API first (fleet/droplets.py).
        """
        cloud = droplets.hosts_from_state(self.inventory, self.state.data)
        return self.inventory.hosts + tuple(h for h in cloud if h.address not in self.unusable)

    def wanted(self, host: Host) -> list[Wanted]:
        """The host's containers, with credentials from the state (made on first use)."""
        secrets = {s.container: self.state.secret(host.id, s.container, new_secret) for s in expand(self.inventory)}
        return desired.for_host(self.inventory, host, secrets)

    def connect(self, host: Host) -> Remote:
        remote = Remote(host, self.keys, connect_timeout=self.inventory.timeouts.connect,
                        sudo_password=self.sudo_password, progress=self.progress)
        with self.keys.lock:
            self.opened.append(remote)
        self._save_pins()
        return remote

    def stats(self) -> dict:
        """SSH connections, round trips and image bytes sent from this computer, per host."""
        hosts: dict[str, dict[str, int]] = {}
        for r in list(self.opened):
            h = hosts.setdefault(r.host.id, {"connections": 0, "round_trips": 0, "pushed_bytes": 0})
            h["connections"] += 1
            h["round_trips"] += r.round_trips
            h["pushed_bytes"] += r.pushed_bytes
        return {"hosts": hosts, "pushed_bytes": sum(h["pushed_bytes"] for h in hosts.values()),
                "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}

    def _save_pins(self) -> None:
        with self.keys.lock, self.state.lock:
            if self.state.data["host_keys"] != self.keys.pinned:
                self.state.data["host_keys"] = dict(self.keys.pinned)
                self.state.save()

    def gather(self, remote: Remote, images: list[str], *, version: bool = False) -> Facts:
        """The host's facts in one round trip; ``version``: also the engine's, for a table people read."""
        name = self.inventory.name
        step = facts_mod.probe(name, desired.network_name(name), images, self.inventory.timeouts.command,
                               version=version)
        result = remote.apply(step)
        try:
            return facts_mod.parse(result.stdout)
        except (ValueError, KeyError) as e:
            raise HostError(f"could not read the host's facts: {e}") from None

    def fan_out(self, work: Callable[[Host], HostReport],
                hosts: tuple[Host, ...] | None = None) -> list[Outcome[Host, HostReport]]:
        return fan_out(self.hosts if hosts is None else hosts, work, parallel=self.inventory.model.parallel,
                       label=lambda h: h.id, progress=self.progress)


def seat_reports(inventory: Inventory, host: Host, facts: Facts, wanted: list[Wanted]) -> list[SeatReport]:
    """A row per wanted container (the proxy too: without it no seat answers)."""
    out = []
    name = proxy.public_name(inventory, host)
    for w in wanted:
        c = facts.containers.get(w.name)
        url = w.seat.url(name) if w.seat else ""
        out.append(SeatReport(w.name, w.seat.service.name if w.seat else "proxy", w.seat.number if w.seat else 0, url,
                              c.state if c else "missing", c.restarts if c else 0))
    return out


def local_ids(inventory: Inventory) -> dict[str, str]:
    """Controller-side image ids for services with push: true, checked before any host is touched."""
    try:
        images = [s.image for s in inventory.services if s.push]
        if inventory.model.tls.mode != "off" and inventory.model.proxy.push:
            images.append(inventory.model.proxy.image)
        return {image: local_image_id(image) for image in images}
    except HostError as e:
        raise InputError(str(e)) from None


def provision(session: Session, *, dry_run: bool = False, confirm: droplets.Confirm | None = None,
              hosts: tuple[Host, ...] | None = None, only: set[str] | None = None,
              prepare: Callable[[Host, Remote], None] | None = None,
              ready_timeout: int | None = None) -> list[Outcome[Host, HostReport]]:
    """Bring every host to the inventory; with dry_run, only probe and plan.

    With a digitalocean block, the droplets are created or adopted first
    (``confirm`` is asked before any is created or destroyed) and join the
    hosts; a droplet that never became usable is a failed row of its own.
    The dry run looks only at the droplets the state already knows.

    For the classroom tasks: ``hosts`` limits the run to those hosts (no
    droplet is created or destroyed), ``only`` to those containers (others
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
    failed_droplets: list[Outcome[Host, HostReport]] = []
    if inv.model.digitalocean is not None and not dry_run and hosts is None:
        failed_droplets = droplets.ensure(session, confirm or droplets.refuse)
    hosts = session.hosts if hosts is None else hosts
    wanted = {h.id: session.wanted(h) for h in hosts}
    session.state.save()  # credentials exist locally before any host can hold them
    # push: true sends each image out of this computer once; the hosts pass it on as it arrives
    relay = relay_mod.Relay(session, inv.name, ids, hosts, inv.timeouts.command, local_sizes(ids))

    def work(host: Host) -> HostReport:
        started = time.monotonic()
        problem = proxy.name_problem(inv, host)
        if problem:
            raise HostError(problem)
        with relay.connect(host) as remote:
            report = HostReport(host)
            if prepare:
                prepare(host, remote)
            images = plan_mod.images_of(wanted[host.id])
            facts = session.gather(remote, images, version=dry_run)
            if recover.adopt_credentials(session.state, remote, host.id, facts, wanted[host.id],
                                         inv.timeouts.command, session.progress):
                wanted[host.id] = session.wanted(host)  # the seats' own credentials, read back from the host
            report.os, report.docker = facts.os_name, facts.docker_state
            report.steps = plan_mod.plan(inv, facts, wanted[host.id], ids, ssh_port=host.port, only=only)
            if not dry_run and report.steps:
                apply_steps(session, relay, host, remote, report.steps)
                if started_containers(report.steps):
                    session.progress(f"  {host.id}: wait until every seat answers")
                    wait_until_ready(session, remote, host, facts, wanted[host.id], report.steps, only=only,
                                     timeout=ready_timeout)
                facts = session.gather(remote, images)
                report.docker = facts.docker_state
            report.seats = seat_reports(inv, host, facts, wanted[host.id])
            report.round_trips = remote.round_trips
        if facts.proxy_ca and not dry_run:
            session.state.set_proxy_ca(host.id, facts.proxy_ca)
        report.seconds = time.monotonic() - started
        if not dry_run:
            broken = [s for s in report.seats if s.state != "running"]
            if broken:
                raise HostError(", ".join(f"{s.container} is {s.state}" for s in broken)
                                + " after provisioning; see `docker logs` on the host")
        return report

    try:
        outcomes = session.fan_out(work, hosts) + failed_droplets
    finally:
        relay.close()
        if os.environ.get("FLEET_STATS"):  # benchmarks/: counts of this run, as JSON
            with open(os.environ["FLEET_STATS"], "w") as f:
                json.dump({**session.stats(), **relay.stats()}, f, indent=1)
    return outcomes


def apply_steps(session: Session, relay: relay_mod.Relay, host: Host, remote: Remote, steps: list[Step]) -> None:
    """Run a host's steps in order; the images it must receive start arriving at once, beside the others.

    A fresh host installs Docker while the image is already on its way (the
    receiver waits for Docker before it loads); the first step that runs a
    container waits for the images. When one side fails, the other is stopped.
    """
    pushes = [s for s in steps if isinstance(s, PushImage)]
    cancel, failed = threading.Event(), []

    def receive() -> None:
        try:
            for step in pushes:
                relay.deliver(step, host, remote, cancel)  # says itself where the image comes from
        except BaseException as e:  # noqa: BLE001 - handed to the host's own thread below
            failed.append(e)

    background = threading.Thread(target=receive, name=f"fleet-image-{host.id}", daemon=True) if pushes else None

    def images_arrived() -> None:
        nonlocal background
        if background is not None:
            background.join()
            background = None
            if failed:
                raise failed[0]

    if background is not None:
        background.start()
    try:
        for group in batches([s for s in steps if not isinstance(s, PushImage)]):
            if any(isinstance(s, Run) and s.argv[:2] == ("docker", "run") for s in group):
                images_arrived()
            for step in group:
                session.progress(f"  {host.id}: {step.title}")
            remote.apply_batch(group)
        images_arrived()
    except BaseException:
        cancel.set()
        if background is not None:
            background.join()
        raise


BATCHED = ("docker", "rm")  # commands that say nothing while they work: several go in one round trip


def batches(steps: list[Step]) -> list[list[Step]]:
    """Consecutive container steps (docker commands, files) together; installs, which report waits as they
    happen, each on its own."""
    out: list[list[Step]] = []
    for step in steps:
        if out and _batchable(step) and _batchable(out[-1][-1]):
            out[-1].append(step)
        else:
            out.append([step])
    return out


def _batchable(step: Step) -> bool:
    return isinstance(step, Upload) or (isinstance(step, Run) and step.argv[0] in BATCHED)


def local_sizes(ids: dict[str, str]) -> dict[str, int]:
    """Bytes of each image this computer sends (for the transfer's ETA); 0 where Docker will not say."""
    return {image: local_image_size(image) for image in ids}


def started_containers(steps: list[Step]) -> bool:
    """Did these steps run or start a container (a seat's, or the proxy every seat is reached through)?"""
    return any(isinstance(s, Run) and s.argv[:2] in (("docker", "run"), ("docker", "start")) for s in steps)


def wait_until_ready(session: Session, remote: Remote, host: Host, before: Facts, wanted: list[Wanted],
                     steps: list[Step], *, only: set[str] | None = None, timeout: int | None = None) -> None:
    """Return once every seat of ``wanted`` (of ``only``) answers; HostError naming those that stopped or stayed silent."""
    inv = session.inventory
    ran = {s.argv for s in steps if isinstance(s, Run)}
    kept = {name: c.restarts for name, c in before.containers.items()}
    restarts = {w.name: kept.get(w.name, 0) for w in wanted if w.run not in ran}  # a new container counts from 0
    secrets = session.state.data["secrets"].get(host.id, {})
    asked = [w for w in wanted if only is None or w.name in only]
    checks = ready.checks(inv, host, asked, secrets, restarts, timeout=timeout)
    if not checks:
        return
    watch = [(w.name, restarts.get(w.name, 0)) for w in wanted if w.seat is None]
    result = remote.run(ready.argv(wait=True, volume=ready.trust_volume(inv)), stdin=ready.stdin(checks, watch),
                        timeout=ready.timeout_for(checks, wait=True), title="ask every seat whether it answers")
    answers, lost, why = ready.parse(result.stdout)
    missing = [c.container for c in checks if c.container not in answers]
    if missing:
        raise HostError(f"the readiness check ended without a word on {', '.join(missing)}: {result.stderr.strip()[-200:]}")
    if lost or not all(a.ready for a in answers.values()):
        raise HostError(ready.explain(answers, lost, why, secrets.values(), {c.container: c.timeout for c in checks})
                        + "; see `fab logs`")


def status(session: Session) -> list[Outcome[Host, HostReport]]:
    """Each seat's container state, restarts, health, CPU and memory; each host's load, memory, disk.

    Three round trips per host: facts, docker stats, and one try of each seat
    through its host's proxy (the check provision waits with, fleet/ready.py).
    """
    inv = session.inventory

    def work(host: Host) -> HostReport:
        with session.connect(host) as remote:
            facts = session.gather(remote, [], version=True)
            step = usage.command(inv.name, inv.timeouts.command)
            measured = usage.parse(remote.apply(step).stdout)
            report = HostReport(host, os=facts.os_name, docker=facts.docker_state, usage=measured.summary())
            wanted = session.wanted(host)
            report.seats = seat_reports(inv, host, facts, wanted)
            extra = sorted(set(facts.containers) - {s.container for s in report.seats})
            report.seats += [SeatReport(n, facts.containers[n].labels.get("fleet.service", "?"), 0, "",
                                        f"{facts.containers[n].state} (not in inventory)") for n in extra]
            existing = {n: c.restarts for n, c in facts.containers.items()}
            checks = ready.checks(inv, host, [w for w in wanted if w.name in existing],
                                  session.state.data["secrets"].get(host.id, {}), existing)
            answers: dict[str, ready.Answer] = {}
            if checks and facts.docker_running:
                result = remote.run(ready.argv(wait=False, volume=ready.trust_volume(inv)), stdin=ready.stdin(checks),
                                    timeout=ready.timeout_for(checks, wait=False), title="ask every seat once")
                answers = ready.parse(result.stdout)[0]
            report.round_trips = remote.round_trips
        for seat in report.seats:
            u = measured.seats.get(seat.container)
            if u:
                seat.cpu = f"{u.cpu_percent:.1f}%"
                seat.memory = f"{usage.human(u.memory)} / {usage.human(u.limit)}"
            if seat.url:
                seat.health = answers[seat.container].health if seat.container in answers else "DOWN (no container)"
        return report

    return session.fan_out(work)


def teardown(session: Session, *, keep_work: bool = False) -> list[Outcome[Host, HostReport]]:
    """Remove every container the fleet labelled on each host, their env files, network and volumes.

    The students' files (a volume per seat) go too unless ``keep_work``.
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
            remote.apply(Run("remove the seat network", commands.network_remove(desired.network_name(name)), timeout))
            volumes = desired.volumes(name)
            if not keep_work:
                seats = {c for c, f in facts.containers.items() if "fleet.seat" in f.labels}
                volumes += sorted({f"{c}-work" for c in seats} | {s.volume for s in expand(session.inventory)})
            remote.apply(Run("remove the fleet's volumes", commands.volume_remove(*volumes), timeout))
            report.round_trips = remote.round_trips
        session.state.forget_host(host.id)
        session.state.save()
        return report

    return session.fan_out(work, session.inventory.hosts)  # droplets are destroyed whole, not cleaned
