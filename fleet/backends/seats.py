"""mode: seats — fixed containers per host, one per student seat, each behind the host's TLS proxy.

Per host: one probe (facts), a pure plan, its steps applied over the host's
one connection, then every seat asked the way a student's browser asks it
(fleet/ready.py). A host that already matches gets no steps: a re-run is one
probe and nothing else.
"""
from __future__ import annotations

import time

from fleet import desired, proxy, ready, recover, usage
from fleet import plan as plan_mod
from fleet.apply import apply_steps, started_containers
from fleet.backends.base import Provisioning
from fleet.desired import Wanted
from fleet.errors import HostError
from fleet.facts import Facts
from fleet.inventory import Host, Inventory
from fleet.report import HostReport, SeatReport
from fleet.runner import Outcome
from fleet.seats import expand, new_secret
from fleet.session import Session
from fleet.ssh import Remote
from fleet.steps import Run, Step


def images_to_send(inventory: Inventory) -> list[str]:
    images = [s.image for s in inventory.services if s.push]
    if inventory.model.tls.mode != "off" and inventory.model.proxy.push:
        images.append(inventory.model.proxy.image)
    return images


def wanted(session: Session, host: Host) -> list[Wanted]:
    """The host's containers, with credentials from the state (made on first use)."""
    inv = session.inventory
    secrets = {s.container: session.state.secret(host.id, s.container, new_secret) for s in expand(inv)}
    return desired.for_host(inv, host, secrets)


def seat_reports(inventory: Inventory, host: Host, facts: Facts, want: list[Wanted]) -> list[SeatReport]:
    """A row per wanted container (the proxy too: without it no seat answers)."""
    out = []
    name = proxy.public_name(inventory, host)
    for w in want:
        c = facts.containers.get(w.name)
        url = w.seat.url(name) if w.seat else ""
        out.append(SeatReport(w.name, w.seat.service.name if w.seat else "proxy", w.seat.number if w.seat else 0, url,
                              c.state if c else "missing", c.restarts if c else 0))
    return out


def provision(run: Provisioning) -> list[Outcome[Host, HostReport]]:
    """Bring each host's seats to the inventory (see fleet/converge.py for the run around it)."""
    session, inv, relay = run.session, run.session.inventory, run.relay
    want = {h.id: wanted(session, h) for h in run.hosts}
    session.state.save()  # credentials exist locally before any host can hold them

    def work(host: Host) -> HostReport:
        started = time.monotonic()
        problem = proxy.name_problem(inv, host)
        if problem:
            raise HostError(problem)
        with relay.connect(host) as remote:
            report = HostReport(host)
            if run.prepare:
                run.prepare(host, remote)
            images = plan_mod.images_of(want[host.id])
            facts = session.gather(remote, images, version=run.dry_run)
            if recover.adopt_credentials(session.state, remote, host.id, facts, want[host.id],
                                         inv.timeouts.command, session.progress):
                want[host.id] = wanted(session, host)  # the seats' own credentials, read back from the host
            report.os, report.docker = facts.os_name, facts.docker_state
            if facts.firstboot.startswith("failed") and not facts.docker_running and not run.dry_run:
                session.progress(f"  {host.id}: Docker's install at first boot (cloud-init) {facts.firstboot}; "
                                 "installing it over SSH")
            report.steps = plan_mod.plan(inv, facts, want[host.id], run.local_ids, ssh_port=host.port, only=run.only)
            if not run.dry_run and report.steps:
                apply_steps(relay, host, remote, report.steps, session.progress)
                if started_containers(report.steps):
                    session.progress(f"  {host.id}: wait until every seat answers")
                    wait_until_ready(session, remote, host, facts, want[host.id], report.steps, only=run.only,
                                     timeout=run.ready_timeout)
                facts = session.gather(remote, images)
                report.docker = facts.docker_state
            report.seats = seat_reports(inv, host, facts, want[host.id])
            report.round_trips = remote.round_trips
        if facts.proxy_ca and not run.dry_run:
            session.state.set_proxy_ca(host.id, facts.proxy_ca)
        report.seconds = time.monotonic() - started
        if not run.dry_run:
            broken = [s for s in report.seats if s.state != "running"]
            if broken:
                raise HostError(", ".join(f"{s.container} is {s.state}" for s in broken)
                                + " after provisioning; see `docker logs` on the host")
        return report

    return session.fan_out(work, run.hosts)


def wait_until_ready(session: Session, remote: Remote, host: Host, before: Facts, want: list[Wanted],
                     steps: list[Step], *, only: set[str] | None = None, timeout: int | None = None) -> None:
    """Return once every seat of ``want`` (of ``only``) answers; HostError naming those that stopped or stayed silent."""
    inv = session.inventory
    ran = {s.argv for s in steps if isinstance(s, Run)}
    kept = {name: c.restarts for name, c in before.containers.items()}
    restarts = {w.name: kept.get(w.name, 0) for w in want if w.run not in ran}  # a new container counts from 0
    secrets = session.state.data["secrets"].get(host.id, {})
    asked = [w for w in want if only is None or w.name in only]
    checks = ready.checks(inv, host, asked, secrets, restarts, timeout=timeout)
    if not checks:
        return
    watch = [(w.name, restarts.get(w.name, 0)) for w in want if w.seat is None]
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
            want = wanted(session, host)
            report.seats = seat_reports(inv, host, facts, want)
            extra = sorted(set(facts.containers) - {s.container for s in report.seats})
            report.seats += [SeatReport(n, facts.containers[n].labels.get("fleet.service", "?"), 0, "",
                                        f"{facts.containers[n].state} (not in inventory)") for n in extra]
            existing = {n: c.restarts for n, c in facts.containers.items()}
            checks = ready.checks(inv, host, [w for w in want if w.name in existing],
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
    inv = session.inventory

    def work(host: Host) -> HostReport:
        with session.connect(host) as remote:
            facts = session.gather(remote, [])
            report = HostReport(host, os=facts.os_name, docker=facts.docker_state)
            report.steps = plan_mod.teardown(inv, facts, keep_work=keep_work)
            remote.apply_batch(report.steps)
            report.removed = sorted(facts.containers)
            report.round_trips = remote.round_trips
        session.state.forget_host(host.id)
        session.state.save()
        return report

    return session.fan_out(work, inv.hosts)  # rented servers are destroyed whole, not cleaned
