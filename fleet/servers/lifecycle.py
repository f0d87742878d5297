"""Provision's and teardown's work with rented servers: adopt, confirm, create, wait; destroy until gone.

Everything here goes through :class:`fleet.cloud.Provider`; the words a
teacher reads ("droplet", "DigitalOcean") are the provider's own.
"""
from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fleet import install, steps
from fleet.cloud import CloudError, Provider, Server, Uncertain, provider_for, settings_of
from fleet.errors import FleetError, HostError, InputError
from fleet.inventory import Host, line_of
from fleet.runner import Outcome, fan_out
from fleet.servers import records
from fleet.servers.decide import Reconciled, batches, number_of, pick_size, quote, reconcile, status_line, tag_for, why
from fleet.servers.records import SSH_PORT
from fleet.session import Session

POLL = 3.0  # seconds between two looks at the API while waiting; 20 requests a minute at most
CREATE_TRIES = 4  # lost create answers tolerated per run before giving up
Confirm = Callable[[str, str], bool]  # (what will happen, the question) -> go ahead?


@dataclass
class Waiting:
    """The servers being waited for, and what became of them."""

    names: dict[int, str]
    fresh: set[int]  # never usable before this run: destroyed if they do not become usable
    ready: set[int] = field(default_factory=set)
    seen: dict[int, Server] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)


def refuse(what: str, question: str) -> bool:
    """The confirmation of a caller that cannot ask: creating or destroying servers needs --yes then."""
    raise InputError(f"{what}\nthis needs confirmation: run it in a terminal, or add --yes")


def _remember(session: Session, provider: Provider, servers: Sequence[Server]) -> None:
    records.remember(session.state, session.keys, provider.name, servers)


def _forget(session: Session, provider: Provider, ids: Sequence[int]) -> None:
    records.forget(session.state, session.keys, provider.name, ids)


def ensure(session: Session, confirm: Confirm, provider: Provider | None = None,
           user_data: str | None = None) -> list[Outcome]:
    """Make the fleet's servers match the inventory's count and wait until they are usable.

    Adopts every server carrying the fleet's tag, asks before creating or
    destroying any (with the price), creates the missing ones in batches and
    waits for each: active, a public IPv4, SSH answering, cloud-init finished
    (``user_data``, if given, is what cloud-init runs at first boot). A server
    that was never usable and does not become so in time is destroyed; one
    that worked before is reported and left alone (it may hold students'
    work). Returns one failed Outcome per server not usable; the usable ones
    are in the state, where ``Session.hosts`` finds them.
    """
    inv = session.inventory
    provider = provider or provider_for(inv, session.progress)
    settings, noun = provider.settings, provider.noun
    tag = tag_for(inv.name)
    existing = provider.servers(tag)
    known = {key: dict(rec) for key, rec in records.records(session.state.data, provider.name).items()}
    _remember(session, provider, existing)
    _check_unlisted(session, provider, {d.id for d in existing})
    plan = reconcile(inv.name, settings.count, existing)
    if plan.create or plan.remove:
        size = pick_size(provider.sizes(), settings.size, settings.region, provider.label)
        if isinstance(size, str):
            raise InputError(size, file=str(inv.path), line=line_of(inv, provider.name, "size"),
                             field=f"{provider.name}.size")
        verb = " and ".join(v for v, n in (("create", plan.create), ("destroy", plan.remove)) if n)
        if not confirm(quote(inv.name, settings, size, plan, label=provider.label, noun=noun),
                       f"{verb.capitalize()} these {noun}s? [y/N] "):
            raise FleetError(f"no {noun} was created or destroyed")
    if plan.remove:
        left = destroy(session, provider, plan.remove)
        if left:
            raise CloudError(f"{noun}s {', '.join(d.name for d in left)} are still listed after "
                             f"{inv.timeouts.droplet} s; run fab provision again (or fab teardown)")
    # Destroyed if they fail: servers this run creates, and those an earlier run recorded and never saw
    # usable (it crashed). A server adopted by its tag alone (the state was lost) may hold work: never.
    fresh = {d.id for d in plan.keep if str(d.id) in known and not known[str(d.id)].get("ready")}
    if plan.create:
        made = create(session, provider, plan.create, ssh_key_id(session, provider), user_data)
        fresh |= {d.id for d in made}
        plan = Reconciled(keep=plan.keep + tuple(made), create=(), remove=())
    waiting = Waiting(names={d.id: d.name for d in plan.keep}, fresh=fresh)
    wait_usable(session, provider, tag, waiting)
    for i in sorted(waiting.ready, key=waiting.names.get):
        session.progress(f"{noun} {waiting.names[i]} (id {i}): {waiting.seen[i].public_ipv4}, ready")
    return settle(session, provider, waiting)


def _check_unlisted(session: Session, provider: Provider, listed: set[int]) -> None:
    """Servers in the state that the tag does not list: gone (forget them) or untagged (say so)."""
    gone = []
    for key, rec in list(records.records(session.state.data, provider.name).items()):
        if int(key) in listed:
            continue
        if provider.server(int(key)) is None:
            gone.append(int(key))
        else:
            session.progress(f"{provider.noun} {rec['name']} (id {key}) is in the state but lacks the tag "
                             f"{tag_for(session.inventory.name)}; fab teardown destroys it by id")
    if gone:
        _forget(session, provider, gone)


def ssh_key_id(session: Session, provider: Provider) -> int:
    """The account's id of the inventory's public key, registering it if the account lacks it.

    Matched by fingerprint. The state remembers whether fleet registered it,
    because teardown deletes only keys fleet created.
    """
    inv = session.inventory
    public = inv.droplet_key[0].read_text().strip()
    fp = provider.fingerprint(public)
    section = records.section(session.state.data, provider.name)
    before = section.get("ssh_key") or {}
    match = next((k for k in provider.keys() if k.fingerprint == fp), None)
    created = bool(match and before.get("id") == match.id and before.get("created_by_fleet"))
    if match is None:
        try:
            match = provider.add_key(f"fleet-{inv.name}", public)
        except Uncertain as e:
            session.progress(f"{e}; looking for the key before trying again")
            time.sleep(POLL)
            match = next((k for k in provider.keys() if k.fingerprint == fp), None)
            if match is None:
                raise CloudError(f"{e}; and the account does not have the key") from None
        created = True
        session.progress(f"registered SSH key {fp} as fleet-{inv.name}")
    with session.state.lock:
        section["ssh_key"] = {"id": match.id, "fingerprint": fp, "created_by_fleet": created}
        session.state.save()
    return match.id


def create(session: Session, provider: Provider, names: Sequence[str], key_id: int,
           user_data: str | None = None) -> list[Server]:
    """Create servers in batches; each batch's ids reach the state file as soon as the API answers.

    A lost answer (Uncertain) is followed by a look at the tag: names that
    exist now are not created again.
    """
    noun = provider.noun
    tag, made, pending, lost = tag_for(session.inventory.name), [], list(names), 0
    while pending:
        batch = batches(pending, provider.max_batch)[0]
        session.progress(f"creating {len(batch)} {noun}{'s' * (len(batch) != 1)}: {', '.join(batch)}")
        try:
            got = provider.create(batch, key_id=key_id, tag=tag, user_data=user_data)
            if not got:
                raise CloudError(f"{provider.label} accepted the create request for {', '.join(batch)} "
                                 f"but returned no {noun}")
        except Uncertain as e:
            lost += 1
            if lost > CREATE_TRIES:
                raise CloudError(f"{e}; gave up after {lost} tries. {noun.capitalize()}s created so far are recorded "
                                 "and tagged: fab provision adopts them, fab teardown destroys them") from None
            session.progress(f"{e}: looking for them by tag before trying again")
            time.sleep(POLL * lost)
            got = [d for d in provider.servers(tag) if d.name in batch]
        _remember(session, provider, got)
        made += got
        done = {d.name for d in got}
        pending = [n for n in pending if n not in done]
    return made


def wait_usable(session: Session, provider: Provider, tag: str, waiting: Waiting) -> None:
    """Wait, bounded by ``timeouts.droplet``, for each server: active with a public IPv4, then SSH and cloud-init.

    The API is asked once per round for the whole tag (not once per server),
    which keeps a large fleet far below the rate limit.
    """
    inv = session.inventory
    deadline = time.monotonic() + inv.timeouts.droplet
    active: dict[int, Server] = {}
    last, last_print = "", 0.0
    while True:
        listed = {d.id: d for d in provider.servers(tag)}
        now_active = []
        for i in waiting.names:
            if i in listed:
                waiting.seen[i] = listed[i]
                if listed[i].usable and i not in active:
                    active[i] = listed[i]
                    now_active.append(listed[i])
        if now_active:
            _remember(session, provider, now_active)
        line = status_line(provider.noun, waiting.names, waiting.seen, set(active))
        if line != last or time.monotonic() - last_print > 15:
            session.progress(line)
            last, last_print = line, time.monotonic()
        if len(active) == len(waiting.names) or time.monotonic() >= deadline:
            break
        time.sleep(POLL)
    for i in waiting.names:
        if i not in active:
            waiting.failed[i] = (f"did not become usable within {inv.timeouts.droplet} s "
                                 f"(last seen: {why(waiting.seen.get(i))})")
    check = {i: d for i, d in active.items() if not records.was_ready(session.state.data, provider.name, i)}
    waiting.ready |= set(active) - set(check)
    if check:
        _answering(session, provider, check, deadline, waiting)


def _answering(session: Session, provider: Provider, servers: dict[int, Server], deadline: float,
               waiting: Waiting) -> None:
    """SSH answers (banner) by the deadline, then cloud-init has finished: checked in parallel."""
    inv = session.inventory
    by_host = {h.address: h for h in records.hosts_from_state(inv, session.state.data)}

    def work(server_id: int) -> None:
        d = servers[server_id]
        host = by_host.get(d.public_ipv4)
        if host is None:
            raise HostError("no address recorded")
        if not wait_banner(host.address, deadline):
            raise HostError(f"SSH did not answer on {host.address} port {SSH_PORT} within {inv.timeouts.droplet} s")
        with session.connect(host) as remote:
            limit = inv.timeouts.cloud_init
            if limit > 0:
                remote.apply(steps.sh("wait for cloud-init to finish", install.WAIT_FOR_CLOUD_INIT, str(limit),
                                      timeout=limit + install.GRACE))
        records.mark_ready(session.state, provider.name, server_id)

    outcomes = fan_out(list(servers), work, parallel=inv.model.parallel,
                       label=lambda i: f"{servers[i].name} ({servers[i].public_ipv4}) SSH", progress=session.progress)
    for o in outcomes:
        if o.ok:
            waiting.ready.add(o.item)
        else:
            waiting.failed[o.item] = o.error or "failed"


def wait_banner(address: str, deadline: float, port: int = SSH_PORT) -> bool:
    """True once the address answers with an SSH banner; False at the deadline."""
    while True:
        try:
            with socket.create_connection((address, port), timeout=3) as sock:
                sock.settimeout(3)
                if sock.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(1)


def settle(session: Session, provider: Provider, waiting: Waiting) -> list[Outcome]:
    """Destroy the fresh servers that failed; report every failure as that server's row."""
    noun = provider.noun
    doomed = [waiting.seen.get(i) or Server(i, waiting.names[i], "new", None) for i in waiting.failed if i in waiting.fresh]
    left = {d.id for d in destroy(session, provider, doomed)} if doomed else set()
    outcomes = []
    for i, reason in sorted(waiting.failed.items(), key=lambda kv: waiting.names[kv[0]]):
        name = waiting.names[i]
        if i not in waiting.fresh:
            after = "left running: it worked before and may hold students' work"
            session.unusable.add((waiting.seen.get(i) or Server(i, name, "", None)).public_ipv4 or name)
        elif i in left:
            after = "destroy requested but it is still listed; fab teardown finishes it"
        else:
            after = "destroyed"
        outcomes.append(Outcome(Host(address=name, user="root", port=SSH_PORT, key=None),
                                error=f"{noun} {name} (id {i}) {reason}; {after}"))
        session.progress(f"{noun} {name} (id {i}): {reason}; {after}")
    return outcomes


# --- destroying -----------------------------------------------------------------


def destroy(session: Session, provider: Provider, servers: Sequence[Server], *, by_tag: bool = False) -> list[Server]:
    """Destroy servers and wait, bounded by ``timeouts.droplet``, until the API no longer has them.

    Gone means: not listed under the tag AND a 404 for the id (a server whose
    tag was removed by hand is still found by its id). Destroyed servers
    leave the state; returns those still there at the deadline.
    """
    tag, timeout, noun = tag_for(session.inventory.name), session.inventory.timeouts.droplet, provider.noun
    deadline = time.monotonic() + timeout
    for d in servers:
        provider.destroy(d.id)
    if by_tag:
        provider.destroy_tagged(tag)
    left = {d.id: d for d in servers}
    rounds = 0
    while True:
        listed = {d.id: d for d in provider.servers(tag)}
        gone = [i for i in left if i not in listed and provider.server(i) is None]
        _forget(session, provider, gone)
        for i in gone:
            left.pop(i)
        if by_tag:  # teardown: anything tagged goes, even a server created after the survey
            left.update(listed)
        if not left:
            return []
        if time.monotonic() >= deadline:
            return list(left.values())
        rounds += 1
        if rounds % 10 == 0:  # a delete that was lost or ignored: ask again
            for i in left:
                provider.destroy(i)
            if by_tag:
                provider.destroy_tagged(tag)
        session.progress(f"waiting for {len(left)} {noun}{'s' * (len(left) != 1)} to be gone: "
                         + ", ".join(sorted(d.name for d in left.values())))
        time.sleep(POLL)


# --- teardown ---------------------------------------------------------------------


@dataclass
class Survey:
    """What teardown will destroy: every server with the tag, and every id the state knows."""

    provider: Provider
    tag: str
    servers: list[Server]
    ssh_key: dict | None

    def describe(self) -> str:
        noun, label = self.provider.noun, self.provider.label
        if not self.servers:
            return f"{label}: no {noun} carries the tag {self.tag}"
        n = len(self.servers)
        rows = [f"  {d.name} (id {d.id}, {d.public_ipv4 or 'no address'}, {d.status})" for d in self.servers]
        return f"{label}: destroy {n} {noun}{'s' * (n != 1)} tagged {self.tag}:\n" + "\n".join(rows)


def survey(session: Session, provider: Provider | None = None) -> Survey:
    """Everything teardown must destroy, for the inventory's provider or the one the state knows."""
    inv = session.inventory
    if provider is None:
        provider = provider_for(inv, session.progress)
    if provider is None:  # the block was removed from the inventory; the state still knows servers
        from fleet.cloud import digitalocean

        name = records.known(session.state.data)[0]
        provider = {"digitalocean": digitalocean.DigitalOcean}[name](None, progress=session.progress)
    tag = tag_for(inv.name)
    found = {d.id: d for d in provider.servers(tag)}
    for key in records.records(session.state.data, provider.name):
        if int(key) not in found:
            d = provider.server(int(key))
            if d is not None:
                found[d.id] = d
    servers = sorted(found.values(), key=lambda d: (number_of(inv.name, d.name) or 0, d.name, d.id))
    return Survey(provider, tag, servers, records.section(session.state.data, provider.name).get("ssh_key"))


def teardown(session: Session, plan: Survey) -> str:
    """Destroy everything the survey found and anything tagged since; poll until the tag lists nothing.

    Then deletes the SSH key, if fleet registered it. Raises CloudError
    (exit 1) naming what is left when the time limit passes.
    """
    provider, noun = plan.provider, plan.provider.noun
    left = destroy(session, provider, plan.servers, by_tag=True)
    if left:
        raise CloudError(f"{len(left)} {noun}(s) still exist after {session.inventory.timeouts.droplet} s: "
                         + ", ".join(f"{d.name} (id {d.id})" for d in left)
                         + f"; run fab teardown again and check {provider.label}'s control panel")
    _forget(session, provider, [int(k) for k in records.records(session.state.data, provider.name)])
    note = _drop_key(session, provider, plan.ssh_key)
    return (f"{provider.label}: destroyed {len(plan.servers)} {noun}{'s' * (len(plan.servers) != 1)}; "
            f"the API lists no {noun} tagged {plan.tag}. {note}")


def _drop_key(session: Session, provider: Provider, key: dict | None) -> str:
    if not key:
        return "No SSH key recorded as registered by fleet; none deleted."
    if not key.get("created_by_fleet"):
        return f"SSH key {key['fingerprint']} was in the account before fleet; left there."
    provider.delete_key(int(key["id"]))
    with session.state.lock:
        records.section(session.state.data, provider.name)["ssh_key"] = None
        session.state.save()
    return f"Deleted the SSH key fleet had registered ({key['fingerprint']})."


def has_servers(session: Session) -> bool:
    return records.has_servers(session.inventory, session.state.data)


__all__ = ["Confirm", "Survey", "destroy", "ensure", "has_servers", "refuse", "settings_of", "survey", "teardown"]
