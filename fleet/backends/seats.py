"""mode: seats — fixed containers per host, one per student seat, each behind the host's TLS proxy.

Per host: one probe (facts), a pure plan, its steps applied over the host's
one connection, then every seat asked the way a student's browser asks it
(fleet/ready.py). A host that already matches gets no steps: a re-run is one
probe and nothing else.

The proxy's certificate (fleet/proxy.py decides, fleet/certs.py orders):
one a CA issued that is in the proxy's storage is used as it is. Without one,
``tls: acme`` runs the proxy ordering it and waits (bounded) for the CA's
answer, failing the host with the CA's reason; ``tls: auto`` first serves
the seats with the proxy's own certificate, asks the CA from an order-only
proxy beside it, and switches to the CA's certificate once issued, or stays
on its own for this run, saying why in one line.
"""
from __future__ import annotations

import datetime as dt
import time

from fleet import certs, coursedata, desired, filesync, proxy, ready, recover, roster, usage
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


def wanted(session: Session, host: Host, cert: proxy.Certificate | None = None) -> list[Wanted]:
    """The host's containers, with credentials from the state (made on first use) and the limits of the roster
    group of the student placed on each seat; the proxy with ``cert``."""
    inv = session.inventory
    secrets = {s.container: session.state.secret(host.id, s.container, new_secret) for s in expand(inv)}
    groups = roster.groups_on(session.state.data.get("roster", {}), inv.roster, host.id)
    return desired.for_host(inv, host, secrets, cert, groups)


def local_data(inventory: Inventory) -> dict[str, filesync.Manifest]:
    """This computer's course data, each folder read and hashed once per command (exit 2 when unreadable)."""
    return {ds.key: filesync.scan(ds.source, file=str(inventory.path), field=ds.field)
            for ds in coursedata.datasets(inventory)}


def seat_reports(inventory: Inventory, host: Host, facts: Facts, want: list[Wanted],
                 address: str | None = None) -> list[SeatReport]:
    """A row per wanted container (the proxy too: without it no seat answers)."""
    out = []
    name = proxy.public_name(inventory, host, address)
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
    data = local_data(inv)
    if inv.model.tls.mode != "off":
        session.tls_material()  # the EAB key and the CA's root: exit 2 before any host is touched when unusable

    def work(host: Host) -> HostReport:
        started = time.monotonic()
        with relay.connect(host) as remote:
            cert = session.certificate(host, remote)
            problem = proxy.name_problem(inv, host, session.address(host))
            if problem:
                raise HostError(problem)
            report = HostReport(host)
            if run.prepare:
                run.prepare(host, remote)
            images = plan_mod.images_of(want[host.id])
            facts = session.gather(remote, images, version=run.dry_run)
            if recover.adopt_credentials(session.state, remote, host.id, facts, want[host.id],
                                         inv.timeouts.command, session.progress):
                pass  # the seats' own credentials, read back from the host: wanted() below takes them
            have = certs.usable(certs.stored(facts.certificates), cert, _now())
            if run.only is not None:  # a classroom task on some seats: the proxy stays as it runs, orders nothing
                cert = serving_now(cert, facts, inv.name)
            # tls: auto without a CA's certificate yet: serve with the proxy's own while the CA is asked beside it
            order_beside = cert.mode == "acme" and cert.fallback and have is None and run.only is None
            serving = internal(cert) if order_beside else cert
            want[host.id] = wanted(session, host, serving)
            report.os, report.docker = facts.os_name, facts.docker_state
            if facts.firstboot.startswith("failed") and not facts.docker_running and not run.dry_run:
                session.progress(f"  {host.id}: Docker's install at first boot (cloud-init) {facts.firstboot}; "
                                 "installing it over SSH")
            report.tls = describe(cert, have, order_beside)
            report.steps = plan_mod.plan(inv, facts, want[host.id], run.local_ids, ssh_port=host.port, only=run.only,
                                         data=data)
            applied = list(report.steps)
            if not run.dry_run:
                if report.steps:
                    apply_steps(relay, host, remote, report.steps, session.progress)
                if cert.mode == "acme" and have is None and run.only is None:
                    serving, more = obtain(run, remote, host, cert, facts, want, order_beside, applied, report, data)
                    applied += more
                if started_containers(applied):
                    session.progress(f"  {host.id}: wait until every seat answers")
                    wait_until_ready(session, remote, host, facts, want[host.id], applied, only=run.only,
                                     timeout=run.ready_timeout, cert=serving)
                if applied:  # what the steps made, as the host now has it; a converged host costs one round trip
                    facts = session.gather(remote, images)
                    report.docker = facts.docker_state
                report.steps = applied
            report.seats = seat_reports(inv, host, facts, want[host.id], session.address(host))
            report.round_trips = remote.round_trips
        if not run.dry_run:
            if facts.proxy_ca:
                session.state.set_proxy_ca(host.id, facts.proxy_ca)
            session.state.set_site(host.id, session.address(host) or host.address, serving.mode,
                                   serving.ca if serving.mode == "acme" else "")
        report.seconds = time.monotonic() - started
        if not run.dry_run:
            broken = [s for s in report.seats if s.state != "running"]
            if broken:
                raise HostError(", ".join(f"{s.container} is {s.state}" for s in broken)
                                + " after provisioning; see `docker logs` on the host")
        return report

    return session.fan_out(work, run.hosts)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def internal(cert: proxy.Certificate) -> proxy.Certificate:
    """The same host served with the proxy's own certificate (tls: auto until, or unless, the CA issues one)."""
    return proxy.Certificate("internal", cert.name, why="tls: auto, until the CA has issued a certificate")


def describe(cert: proxy.Certificate, have: certs.Stored | None, order_beside: bool) -> str:
    """For plan: which certificate the host gets, and whether it must be ordered."""
    text = cert.describe()
    if cert.mode != "acme":
        return text
    if have is not None:
        return f"{text}; in the proxy's storage until {have.not_after:%Y-%m-%d %H:%M} UTC, nothing to order"
    if order_beside:
        return f"{text}; ordered from a second proxy beside the running one once the seats run"
    return f"{text}; the proxy orders it (a failed order fails the host)"


def obtain(run: Provisioning, remote: Remote, host: Host, cert: proxy.Certificate, facts: Facts,
           want: dict[str, list[Wanted]], order_beside: bool, applied: list[Step],
           report: HostReport, data: dict[str, filesync.Manifest] | None = None) -> tuple[proxy.Certificate, list[Step]]:
    """Have the CA issue ``cert`` (bounded by timeouts.certificate); return what the proxy now serves and the
    steps taken to get there.

    tls: acme: the proxy orders it; HostError with the CA's reason when it does
    not come. tls: auto: an order-only proxy asks beside the running one; when
    the certificate comes, the proxy is replaced by one serving it, otherwise
    the host stays on the proxy's own certificate and the run says why.
    """
    session, inv = run.session, run.session.inventory
    limit, name = inv.timeouts.certificate, proxy.container_name(inv.name)
    ca = cert.ca or "Let's Encrypt (or ZeroSSL)"
    session.progress(f"  {host.id}: ask {ca} for a certificate for {cert.name} (at most {limit} s)")
    if order_beside:
        order = desired.proxy_container(inv, host, expand(inv), cert, order_only=True)
        busy = sorted(p for p in cert.ports if p in facts.ports_in_use
                      and not any(p in c.host_ports for c in facts.containers.values()))
        if busy:
            answer = certs.Answer(False, f"port {busy[0]} is used by another program on this host, and the CA "
                                         "validates there")
        else:
            remote.apply_batch(list(order.files))
            answer = _ask(remote, certs.argv("order", order.name, limit, cert, inv.name, order.run), limit,
                          inv.timeouts.command)
        if not answer.obtained:
            line = (f"tls: auto: no certificate for {cert.name} from {ca}: {answer.reason}; serving it with the "
                    "proxy's own certificate for this run (browsers warn)")
            report.notes.append(line)
            session.progress(f"  {host.id}: {line}")
            return internal(cert), []
        want[host.id] = wanted(session, host, cert)
        after = session.gather(remote, plan_mod.images_of(want[host.id]))
        steps = plan_mod.plan(inv, after, want[host.id], run.local_ids, ssh_port=host.port, only=run.only, data=data)
        if steps:
            apply_steps(run.relay, host, remote, steps, session.progress)
        return cert, steps
    started = any(isinstance(s, Run) and s.argv[:2] == ("docker", "run") and name in s.argv for s in applied)
    answer = _ask(remote, certs.argv("watch" if started else "restart", name, limit, cert, inv.name), limit,
                  inv.timeouts.command)
    if not answer.obtained:
        raise HostError(f"tls: acme: no certificate for {cert.name} from {ca}: {answer.reason}")
    return cert, []


def _ask(remote: Remote, argv: tuple[str, ...], limit: int, timeout: int) -> certs.Answer:
    result = remote.run(argv, timeout=limit + timeout, title="wait for the CA's certificate")
    return certs.parse(result.stdout, limit)


def wait_until_ready(session: Session, remote: Remote, host: Host, before: Facts, want: list[Wanted],
                     steps: list[Step], *, only: set[str] | None = None, timeout: int | None = None,
                     cert: proxy.Certificate | None = None) -> None:
    """Return once every seat of ``want`` (of ``only``) answers; HostError naming those that stopped or stayed silent.

    ``cert``: the certificate the proxy serves now, which the seats' HTTPS is verified against.
    """
    inv = session.inventory
    ran = {s.argv for s in steps if isinstance(s, Run)}
    kept = {name: c.restarts for name, c in before.containers.items()}
    restarts = {w.name: kept.get(w.name, 0) for w in want if w.run not in ran}  # a new container counts from 0
    secrets = session.state.data["secrets"].get(host.id, {})
    asked = [w for w in want if only is None or w.name in only]
    checks = ready.checks(inv, host, asked, secrets, restarts, timeout=timeout, address=session.address(host))
    if not checks:
        return
    watch = [(w.name, restarts.get(w.name, 0)) for w in want if w.seat is None]
    trust = ready.trust(inv, cert) if cert is not None and inv.model.tls.mode != "off" else ""
    result = remote.run(ready.argv(wait=True, volume=ready.trust_volume(inv), trust=trust),
                        stdin=ready.stdin(checks, watch), timeout=ready.timeout_for(checks, wait=True),
                        title="ask every seat whether it answers")
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
            serving = serving_now(session.certificate(host, remote, material=False), facts, inv.name)
            certificate_status(report, serving, facts)
            want = wanted(session, host, serving)
            address = session.address(host)
            report.seats = seat_reports(inv, host, facts, want, address)
            extra = sorted(set(facts.containers) - {s.container for s in report.seats})
            report.seats += [SeatReport(n, facts.containers[n].labels.get("fleet.service", "?"), 0, "",
                                        f"{facts.containers[n].state} (not in inventory)") for n in extra]
            existing = {n: c.restarts for n, c in facts.containers.items()}
            checks = ready.checks(inv, host, [w for w in want if w.name in existing],
                                  session.state.data["secrets"].get(host.id, {}), existing, address=address)
            answers: dict[str, ready.Answer] = {}
            if checks and facts.docker_running:
                result = remote.run(ready.argv(wait=False, volume=ready.trust_volume(inv), trust=ready.trust(inv, serving)),
                                    stdin=ready.stdin(checks), timeout=ready.timeout_for(checks, wait=False),
                                    title="ask every seat once")
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


def serving_now(cert: proxy.Certificate, facts: Facts, fleet: str) -> proxy.Certificate:
    """The certificate the host's proxy serves as it runs: the CA's only when it runs as the one ordering it
    (labelled fleet.tls=acme); a proxy that fell back (tls: auto) serves its own."""
    if cert.mode != "acme":
        return cert
    running = facts.containers.get(proxy.container_name(fleet))
    return cert if running is not None and running.labels.get("fleet.tls") == "acme" else internal(cert)


def certificate_status(report: HostReport, serving: proxy.Certificate, facts: Facts) -> None:
    """For status: the certificate the proxy serves (issuer and end), and a warning when a CA's ends within 24 h."""
    if serving.mode == "off":
        return
    found = certs.find(certs.stored(facts.certificates), serving)
    text, warn = certs.describe(found, _now())
    report.certificate = f"{'CA' if serving.mode == 'acme' else 'own'} certificate for {serving.name}: {text}"
    if warn:
        report.notes.append(f"WARNING: the certificate for {serving.name} ends within 24 h ({text}); the proxy renews "
                            "it itself while ports 80 and 443 reach it: check them, or run provision")


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
