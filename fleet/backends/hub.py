"""mode: hub — the whole class at one HTTPS address: JupyterHub in front of Docker Swarm's scheduler.

One fan-out over the hosts, the manager first (it gets a slot before any
worker, whatever ``parallel`` is): every host gets Docker, curl and the
students' image as in seats mode (the same planner and the same relay); the
manager then forms the swarm, publishes the join token to the workers'
threads (in memory only), and runs the hub and the fleet's Caddy in front of
it; each worker waits (bounded) for the token and joins. A host that cannot
join is its own failed row. After the fan-out the manager labels the fleet's
nodes and drains and removes the nodes of hosts no longer in the inventory.

Accounts live in the state like seat credentials: a stable login per roster
name (never given to anyone else, since the login's volume holds its
owner's files), a generated password (128 bits) and its scrypt hash; the hub
sees only the hashes (fleet/hub/passwords.py).
"""
from __future__ import annotations

import threading
import time

from fleet import plan as plan_mod
from fleet import proxy, ready
from fleet.apply import apply_steps
from fleet.backends import hub_status
from fleet.backends.base import Provisioning
from fleet.commands import swarm
from fleet.errors import HostError
from fleet.facts import Facts
from fleet.hub import auth, passwords
from fleet.hub import facts as hub_facts
from fleet.hub import plan as hub_plan
from fleet.hub.config import HubSettings
from fleet.hub.plan import manager_of
from fleet.inventory import Host, Inventory
from fleet.report import HostReport, SeatReport
from fleet.runner import Outcome
from fleet.session import Session
from fleet.ssh import Remote

READY_PATH = "hub/api"  # answers 200 (the hub's version) once the hub and its proxy are up


def images_to_send(inventory: Inventory) -> list[str]:
    hub, svc = inventory.model.hub, inventory.services[0]
    images = [svc.image] if svc.push else []
    if hub.push and hub.image:
        images.append(hub.image)
    if inventory.model.tls.mode != "off" and inventory.model.proxy.push:
        images.append(inventory.model.proxy.image)
    return images


# --- accounts -------------------------------------------------------------------------------------


def student_names(inventory: Inventory) -> list[str]:
    return list(inventory.roster.names) if inventory.roster else []


def accounts(session: Session) -> tuple[dict[str, str], str, dict[str, dict]]:
    """({name: login} of the roster, the admin's login or "", {login: account}) — made on first use, kept.

    An account is {"password", "salt", "hash"}; the state (0600) holds it like
    a seat's token. A student who left keeps their login in the state (their
    volume holds their files) but is no longer allowed in.
    """
    inv, state = session.inventory, session.state
    with state.lock:
        section = state.data.setdefault("hub", {"logins": {}, "accounts": {}})
        logins = auth.login_names(student_names(inv), previous=section["logins"])
        section["logins"].update(logins)
        admin = inv.model.hub.admin or ""
        for login in [*logins.values(), *([admin] if admin else [])]:
            if login not in section["accounts"]:
                pw, salt = auth.new_password(), auth.new_salt()
                section["accounts"][login] = {"password": pw, "salt": salt,
                                              "hash": passwords.hash_password(pw, bytes.fromhex(salt))}
        state.save()
        return dict(logins), admin, dict(section["accounts"])


def public_url(session: Session, manager: Host) -> str:
    inv = session.inventory
    name = proxy.public_name(inv, manager, session.address(manager))
    host = f"[{name}]" if ":" in name else name
    scheme = "http" if inv.model.tls.mode == "off" else "https"
    return f"{scheme}://{host}:{inv.model.hub.port}/"


# --- provision ------------------------------------------------------------------------------------


class _Token:
    """The workers' join token, handed from the manager's thread to the workers' (memory only)."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.value = ""
        self.failed = ""

    def wait(self, seconds: float) -> str:
        if not self.ready.wait(seconds):
            raise HostError(f"the manager did not form the swarm within {seconds:.0f} s")
        if self.failed:
            raise HostError(f"the manager failed, so this host cannot join its swarm ({self.failed})")
        return self.value


def provision(run: Provisioning) -> list[Outcome[Host, HostReport]]:
    session, inv, relay = run.session, run.session.inventory, run.relay
    manager = manager_of(inv, run.hosts)
    hosts = (manager, *[h for h in run.hosts if h != manager])
    logins, admin, accts = accounts(session)
    users = sorted(set(logins.values()))
    hashes = {login: a["hash"] for login, a in accts.items() if login in (*users, admin)}
    token = _Token()
    svc = inv.services[0]

    def work(host: Host) -> HostReport:
        started = time.monotonic()
        is_manager = host == manager
        try:
            with relay.connect(host) as remote:
                report = HostReport(host)
                images = [svc.image] + ([inv.model.hub.image] if is_manager and inv.model.hub.image else []) \
                    + ([inv.model.proxy.image] if is_manager and inv.model.tls.mode != "off" else [])
                facts = session.gather(remote, images, version=run.dry_run)
                node = _node(session, remote, facts)
                report.os, report.docker = facts.os_name, facts.docker_state
                steps = _host_steps(run, host, facts, images, is_manager)
                if is_manager:
                    cert = _certificate(session, manager, remote)
                    s = hub_plan.settings(inv, users, admin, public_url(session, manager), workers=len(hosts) > 1)
                    wanted = [hub_plan.hub_container(inv, s)]
                    if cert is not None:
                        wanted.append(hub_plan.proxy_container(inv, manager, s, cert))
                    steps += hub_plan.manager_steps(inv, manager, facts, node, s, wanted,
                                                    {**facts.images, **run.local_ids},
                                                    hub_plan.passwords_file(inv.name, hashes))
                report.steps = steps
                if not run.dry_run:
                    apply_steps(relay, host, remote, steps, session.progress)
                if is_manager:
                    report.seats = [SeatReport(s.hub_name, "hub", 0, s.public_url, "running")]
                    if not run.dry_run:
                        token.value = remote.run(swarm.join_token(), timeout=inv.timeouts.command,
                                                 title="ask the swarm for the workers' join token").stdout.strip()
                        token.ready.set()
                        session.progress(f"  {host.id}: wait until the hub answers at {s.public_url}")
                        _wait_for_hub(session, remote, s, cert)
                        after = session.gather(remote, [])
                        if after.proxy_ca:
                            session.state.set_proxy_ca(host.id, after.proxy_ca)
                        session.state.set_site(host.id, session.address(host) or host.address,
                                               cert.mode if cert else "off", cert.ca if cert else "")
                elif not run.dry_run:
                    session.progress(f"  {host.id}: wait for the manager's swarm")
                    joining = hub_plan.worker_steps(inv, node, manager.address, host.address,
                                                    token.wait(inv.timeouts.install + inv.timeouts.push))
                    apply_steps(relay, host, remote, joining, session.progress)
                    report.steps += joining
                report.round_trips = remote.round_trips
        except BaseException as e:
            if is_manager and not token.ready.is_set():
                token.failed = str(e) or type(e).__name__
                token.ready.set()
            raise
        finally:
            if is_manager:
                token.ready.set()  # a dry run, or a manager that returned: no worker waits for ever
        report.seconds = time.monotonic() - started
        return report

    outcomes = session.fan_out(work, hosts)
    if not run.dry_run and outcomes[0].ok and len(hosts) > 1:
        _sync_nodes(session, manager, hosts)
    return outcomes


def _certificate(session: Session, manager: Host, remote: Remote) -> proxy.Certificate | None:
    """The class address's certificate: as in seats mode, except that ``tls: auto`` serves the proxy's own in
    hub mode (the certificate upgrade of seats mode is not done here yet; see README)."""
    if session.inventory.model.tls.mode == "off":
        return None
    cert = session.certificate(manager, remote)
    if cert.mode == "acme" and cert.fallback:
        cert = proxy.Certificate("internal", cert.name, why="tls: auto (hub mode: the proxy's own certificate)")
    return cert


def _node(session: Session, remote: Remote, facts: Facts) -> hub_facts.SwarmFacts:
    if not facts.docker_running:
        return hub_facts.SwarmFacts()
    inv = session.inventory
    result = remote.apply(hub_facts.probe(inv.name, f"{hub_plan.config_dir(inv.name)}/{auth.HASH_FILE}",
                                          f"{inv.name}-hubnet", inv.timeouts.command))
    try:
        return hub_facts.parse(result.stdout)
    except ValueError as e:
        raise HostError(f"could not read the node's swarm state: {e}") from None


def _host_steps(run: Provisioning, host: Host, facts: Facts, images: list[str], is_manager: bool) -> list:
    """Docker, curl and the images, as the seats planner has them."""
    inv = run.session.inventory
    steps = plan_mod.docker_steps(inv, facts)
    if not facts.curl:
        from fleet import install

        steps += install.curl_steps(facts.package_manager, inv.timeouts)
    pushed = set(run.local_ids)
    for image in images:
        if is_manager and image == inv.model.hub.image and not inv.model.hub.push:
            continue
        steps += plan_mod.image_steps(inv, facts, [_Img(image, image in pushed)], run.local_ids)
    if is_manager and not inv.model.hub.image and not facts.images.get(hub_plan.local_build_tag()):
        steps.append(hub_plan.build_step(inv))
    return steps


class _Img:
    """What plan.image_steps reads of a wanted container: its image and whether it is pushed."""

    def __init__(self, image: str, push: bool):
        self.image, self.push = image, push


def _wait_for_hub(session: Session, remote: Remote, s: HubSettings, cert: proxy.Certificate | None) -> None:
    """The hub answers its API through Caddy as a student's browser reaches it; HostError with the hub's last words."""
    inv = session.inventory
    port = inv.model.hub.port
    name = s.public_url.split("//", 1)[1].rstrip("/").removesuffix(f":{port}")  # as the URL writes it ([v6] too)
    check = ready.Check(s.hub_name, s.public_url + READY_PATH, "ok", inv.model.hub.start_timeout, 0,
                        f"{name}:{port}:127.0.0.1:{port}" if inv.model.tls.mode != "off" else "")
    if inv.model.tls.mode == "off":
        check = ready.Check(s.hub_name, f"http://127.0.0.1:{port}/{READY_PATH}", "ok", inv.model.hub.start_timeout)
    trust = ready.trust(inv, cert) if cert is not None else ""
    watch = [(proxy.container_name(inv.name), 0)] if cert is not None else []
    result = remote.run(ready.argv(wait=True, volume=ready.trust_volume(inv), trust=trust),
                        stdin=ready.stdin([check], watch), timeout=ready.timeout_for([check], wait=True),
                        title="ask the hub whether it answers")
    answers, lost, why = ready.parse(result.stdout)
    if lost or not answers.get(s.hub_name, ready.Answer(s.hub_name, False)).ready:
        raise HostError(ready.explain(answers, lost, why, [], {s.hub_name: check.timeout}))


def _sync_nodes(session: Session, manager: Host, hosts: tuple[Host, ...]) -> None:
    """Label the fleet's nodes; drain and remove those of hosts no longer listed (one more round trip)."""
    inv = session.inventory
    with session.connect(manager) as remote:
        node = _node(session, remote, session.gather(remote, []))
        result = remote.run(swarm.sync_nodes(inv.name, node.node_id, [h.address for h in hosts]),
                            timeout=inv.timeouts.command, title="label the swarm's nodes")
    for line in result.stdout.splitlines():
        session.progress(f"  {manager.id}: {line}")


# --- status and teardown --------------------------------------------------------------------------


def status(session: Session) -> list[Outcome[Host, HostReport]]:
    return hub_status.status(session)


def teardown(session: Session, *, keep_work: bool = False) -> list[Outcome[Host, HostReport]]:
    """Stop every student's server and the hub; remove the overlay, the volumes (the students' files and the
    hub's database unless ``keep_work``) and the swarm: the workers leave first, then the manager."""
    inv = session.inventory
    hosts = session.hosts
    manager = manager_of(inv, hosts)
    workers = tuple(h for h in hosts if h != manager)

    def clean(host: Host, make) -> HostReport:  # noqa: ANN001 - make(facts) -> the host's steps
        with session.connect(host) as remote:
            facts = session.gather(remote, [])
            report = HostReport(host, os=facts.os_name, docker=facts.docker_state)
            if facts.docker_running:
                report.steps, report.removed = make(facts), sorted(facts.containers)
                remote.apply_batch(report.steps)
            report.round_trips = remote.round_trips
        return report

    def part(facts: Facts, *, of_manager: bool) -> list:
        return hub_plan.teardown_steps(inv, facts, manager=of_manager, keep_work=keep_work)

    # the servers first (Swarm removes their containers on the workers), then the workers leave, the manager last
    stopped = session.fan_out(lambda h: clean(h, lambda f: hub_plan.stop_servers_steps(inv)), (manager,))
    outcomes = session.fan_out(lambda h: clean(h, lambda f: part(f, of_manager=False)), workers)
    if stopped[0].ok:
        outcomes = session.fan_out(lambda h: clean(h, lambda f: part(f, of_manager=True)), (manager,)) + outcomes
    else:
        outcomes = stopped + outcomes
    for o in outcomes:
        if o.ok:
            session.state.forget_host(o.item.id)
    if not keep_work:
        with session.state.lock:
            session.state.data.pop("hub", None)  # the students' files are gone: new accounts next time
    session.state.save()
    return outcomes
