"""Droplets: the DigitalOcean servers fleet creates, waits for, adopts and destroys.

A forgotten droplet costs the teacher money every hour, so everything here is
built around never losing track of one:

- every droplet carries the tag ``fleet:NAME``, given in the create request
  itself, so teardown finds it through the API even without the state file;
- its id is written to the state file the moment the API returns it;
- a create whose answer was lost (5xx, broken connection) is never repeated
  blindly: fleet lists the tag and creates only the names still missing;
- teardown destroys by id (state and API) and by tag, then polls until the
  API lists nothing with the tag and every id it knew answers 404.

Pure decisions (names, :func:`reconcile`, batches, the price quote, hosts
from the state) take plain data and are unit-tested; the functions after
them do the I/O through :mod:`fleet.cloud.digitalocean`, the state and SSH.
"""
from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleet import install, steps
from fleet.cloud import CloudError, Uncertain
from fleet.cloud.digitalocean import MAX_NAMES, Client, Droplet, Size, fingerprint
from fleet.errors import FleetError, HostError, InputError
from fleet.inventory import Host, Inventory, line_of
from fleet.runner import Outcome, fan_out
from fleet.ssh import known_hosts_name

if TYPE_CHECKING:
    from fleet.converge import Session

SSH_PORT = 22
POLL = 3.0  # seconds between two looks at the API while waiting; 20 requests a minute at most
CREATE_TRIES = 4  # lost create answers tolerated per run before giving up
Confirm = Callable[[str, str], bool]  # (what will happen, the question) -> go ahead?


# --- pure decisions -------------------------------------------------------------


def tag_for(fleet: str) -> str:
    """The tag every droplet of the fleet carries: ``fleet:NAME`` (the API allows letters, digits, : - _)."""
    return f"fleet:{fleet}"


def droplet_name(fleet: str, number: int) -> str:
    """``NAME-01`` ... ``NAME-99``, ``NAME-100``: sorted as a teacher counts."""
    return f"{fleet}-{number:02d}"


def number_of(fleet: str, name: str) -> int | None:
    m = re.fullmatch(rf"{re.escape(fleet)}-(\d+)", name)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class Reconciled:
    keep: tuple[Droplet, ...]
    create: tuple[str, ...]
    remove: tuple[Droplet, ...]  # highest-numbered first


def reconcile(fleet: str, count: int, existing: Iterable[Droplet]) -> Reconciled:
    """Which droplets to keep, which names to create and which droplets to destroy for ``count``.

    Wanted are ``NAME-01`` .. ``NAME-count``. Of two droplets with one name
    (a lost create answer, retried elsewhere) the older, lower id stays.
    Everything else carrying the fleet's tag goes: higher numbers after the
    count shrank, duplicates, and foreign names (the tag says fleet owns them;
    the teacher sees them listed before confirming).
    """
    wanted = [droplet_name(fleet, n) for n in range(1, count + 1)]
    first: dict[str, Droplet] = {}
    for d in sorted(existing, key=lambda d: d.id):
        first.setdefault(d.name, d)
    keep = tuple(first[n] for n in wanted if n in first)
    kept = {d.id for d in keep}
    remove = sorted((d for d in existing if d.id not in kept),
                    key=lambda d: (-(number_of(fleet, d.name) or 0), d.name, -d.id))
    return Reconciled(keep=keep, create=tuple(n for n in wanted if n not in first), remove=tuple(remove))


def batches(names: Sequence[str], size: int = MAX_NAMES) -> list[tuple[str, ...]]:
    return [tuple(names[i:i + size]) for i in range(0, len(names), size)]


def pick_size(sizes: Iterable[Size], slug: str, region: str) -> Size | str:
    """The size, or why it cannot be used (unknown, not offered in the region, unavailable)."""
    sizes = list(sizes)
    found = next((s for s in sizes if s.slug == slug), None)
    if found is None:
        here = sorted(s.slug for s in sizes if region in s.regions and s.available)
        return f"{slug!r} is not a DigitalOcean size; sizes in {region}: {', '.join(here[:12]) or 'none'}"
    if region not in found.regions:
        return f"size {slug!r} is not offered in region {region!r}; it is in {', '.join(found.regions) or 'no region'}"
    if not found.available:
        return f"size {slug!r} is not available at the moment; pick another"
    return found


def money(amount: float, places: int = 2) -> str:
    return f"${amount:,.{places}f}"


def quote(fleet: str, settings: Any, size: Size, plan: Reconciled) -> str:
    """What provision will do to the droplets, and what they cost: shown before the teacher confirms."""
    def names(ds: Iterable[str]) -> str:
        return ", ".join(ds)

    total = len(plan.keep) + len(plan.create)
    lines = [f"DigitalOcean, fleet {fleet!r} (tag {tag_for(fleet)}): {size.slug} ({size.vcpus} vCPU, "
             f"{size.memory // 1024 if size.memory >= 1024 else size.memory} {'GB' if size.memory >= 1024 else 'MB'}) "
             f"in {settings.region}, image {settings.image}"]
    if plan.create:
        lines.append(f"  create  {len(plan.create)}: {names(plan.create)}")
    if plan.remove:
        doomed = (f"{d.name} (id {d.id}{', ' + d.public_ipv4 if d.public_ipv4 else ''})" for d in plan.remove)
        lines.append(f"  DESTROY {len(plan.remove)}: {names(doomed)}; everything on them is lost")
    if plan.keep:
        lines.append(f"  keep    {len(plan.keep)}: {names(d.name for d in plan.keep)}")
    hourly = size.price_hourly * total
    lines.append(f"  price: {money(size.price_hourly, 4)} an hour each; {total} droplet{'s' * (total != 1)}: "
                 f"{money(hourly, 4)} an hour, {money(hourly * 24)} for 24 hours. Billed until `fab teardown` destroys them")
    return "\n".join(lines)


def hosts_from_state(inventory: Inventory, state_data: dict) -> tuple[Host, ...]:
    """The droplets the state knows an address of, as hosts (log in as the block's user with its key)."""
    do = inventory.model.digitalocean
    key = str(inventory.droplet_key[1]) if inventory.droplet_key else None
    records = sorted(_records(state_data).values(), key=lambda r: (number_of(inventory.name, r["name"]) or 0, r["name"]))
    return tuple(Host(address=r["address"], user=do.user if do else "root", port=SSH_PORT, key=key)
                 for r in records if r.get("address"))


def status_line(names: dict[int, str], seen: dict[int, Droplet], ready: set[int]) -> str:
    """One progress line while waiting: how many are ready and what the others are doing."""
    waiting = [f"{names[i]} {_why(seen.get(i))}" for i in sorted(names, key=names.get) if i not in ready]
    return f"droplets: {len(ready)}/{len(names)} ready" + (f" (waiting: {', '.join(waiting)})" if waiting else "")


def _why(d: Droplet | None) -> str:
    if d is None:
        return "not listed yet"
    if d.status != "active":
        return d.status
    return "active, no public IPv4 yet" if d.public_ipv4 is None else "active"


# --- the state's record of droplets ----------------------------------------------


def _section(state_data: dict) -> dict:
    return state_data.setdefault("digitalocean", {"droplets": {}, "ssh_key": None})


def _records(state_data: dict) -> dict[str, dict]:
    return (state_data.get("digitalocean") or {}).get("droplets") or {}


def remember(session: Session, droplets: Iterable[Droplet]) -> None:
    """Write droplet ids to the state file now (atomic), before anything else can go wrong.

    The first time a droplet's address is learnt, any host key pinned for that
    address belonged to an older machine (the cloud reuses addresses): it is
    dropped, so the new droplet's key is pinned on first contact.
    """
    state, new_addresses = session.state, []
    with state.lock:
        records = _section(state.data)["droplets"]
        for d in droplets:
            rec = records.setdefault(str(d.id), {"name": d.name, "address": None, "ready": False})
            if d.public_ipv4 and rec.get("address") != d.public_ipv4:
                new_addresses.append(d.public_ipv4)
                rec["address"], rec["ready"] = d.public_ipv4, False
        state.save()
    _unpin(session, new_addresses)


def forget(session: Session, droplet_ids: Iterable[int]) -> None:
    """Drop destroyed droplets from the state, with their seats' credentials and host key pins."""
    state, gone_addresses = session.state, []
    with state.lock:
        records = _section(state.data)["droplets"]
        for i in droplet_ids:
            rec = records.pop(str(i), None)
            if rec and rec.get("address"):
                gone_addresses.append(rec["address"])
                state.forget_host(rec["address"])
        state.save()
    _unpin(session, gone_addresses)


def _unpin(session: Session, addresses: list[str]) -> None:
    """Drop the host keys pinned for these addresses (locks taken keys first, as Session does)."""
    if not addresses:
        return
    names = {known_hosts_name(Host(address=a, user="root", port=SSH_PORT, key=None)) for a in addresses}
    with session.keys.lock, session.state.lock:
        for name in names:
            session.keys.pinned.pop(name, None)
            session.state.data["host_keys"].pop(name, None)
        session.state.save()


def _mark_ready(session: Session, droplet_id: int) -> None:
    with session.state.lock:
        rec = _section(session.state.data)["droplets"].get(str(droplet_id))
        if rec is not None:
            rec["ready"] = True
        session.state.save()


# --- provision: adopt, confirm, create, wait ---------------------------------------


@dataclass
class Waiting:
    """The droplets being waited for, and what became of them."""

    names: dict[int, str]
    fresh: set[int]  # never usable before this run: destroyed if they do not become usable
    ready: set[int] = field(default_factory=set)
    seen: dict[int, Droplet] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)


def refuse(what: str, question: str) -> bool:
    """The confirmation of a caller that cannot ask: creating or destroying droplets needs --yes then."""
    raise InputError(f"{what}\nthis needs confirmation: run it in a terminal, or add --yes")


def client_for(session: Session) -> Client:
    """The API client, checked to have a token before anything touches the network."""
    return Client(progress=session.progress)


def ensure(session: Session, confirm: Confirm, client: Client | None = None) -> list[Outcome]:
    """Make the fleet's droplets match the inventory's count and wait until they are usable.

    Adopts every droplet carrying the fleet's tag, asks before creating or
    destroying any (with the price), creates the missing ones in batches of
    10 and waits for each: active, a public IPv4, SSH answering, cloud-init
    finished. A droplet that was never usable and does not become so in time
    is destroyed; one that worked before is reported and left alone (it may
    hold students' work). Returns one failed Outcome per droplet not usable;
    the usable ones are in the state, where ``Session.hosts`` finds them.
    """
    inv, do = session.inventory, session.inventory.model.digitalocean
    client = client or client_for(session)
    tag = tag_for(inv.name)
    existing = client.droplets(tag)
    known = {key: dict(rec) for key, rec in _records(session.state.data).items()}
    remember(session, existing)
    _check_unlisted(session, client, {d.id for d in existing})
    plan = reconcile(inv.name, do.count, existing)
    if plan.create or plan.remove:
        size = pick_size(client.sizes(), do.size, do.region)
        if isinstance(size, str):
            raise InputError(size, file=str(inv.path), line=line_of(inv, "digitalocean", "size"), field="digitalocean.size")
        verb = " and ".join(v for v, n in (("create", plan.create), ("destroy", plan.remove)) if n)
        if not confirm(quote(inv.name, do, size, plan), f"{verb.capitalize()} these droplets? [y/N] "):
            raise FleetError("no droplet was created or destroyed")
    if plan.remove:
        left = destroy(session, client, plan.remove)
        if left:
            raise CloudError(f"droplets {', '.join(d.name for d in left)} are still listed after "
                             f"{inv.timeouts.droplet} s; run fab provision again (or fab teardown)")
    # Destroyed if they fail: droplets this run creates, and those an earlier run recorded and never saw
    # usable (it crashed). A droplet adopted by its tag alone (the state was lost) may hold work: never.
    fresh = {d.id for d in plan.keep if str(d.id) in known and not known[str(d.id)].get("ready")}
    if plan.create:
        made = create(session, client, plan.create, ssh_key_id(session, client))
        fresh |= {d.id for d in made}
        plan = Reconciled(keep=plan.keep + tuple(made), create=(), remove=())
    waiting = Waiting(names={d.id: d.name for d in plan.keep}, fresh=fresh)
    wait_usable(session, client, tag, waiting)
    for i in sorted(waiting.ready, key=waiting.names.get):
        session.progress(f"droplet {waiting.names[i]} (id {i}): {waiting.seen[i].public_ipv4}, ready")
    return settle(session, client, waiting)


def _was_ready(session: Session, droplet_id: int) -> bool:
    return bool(_records(session.state.data).get(str(droplet_id), {}).get("ready"))


def _check_unlisted(session: Session, client: Client, listed: set[int]) -> None:
    """Droplets in the state that the tag does not list: gone (forget them) or untagged (say so)."""
    gone = []
    for key, rec in list(_records(session.state.data).items()):
        if int(key) in listed:
            continue
        if client.droplet(int(key)) is None:
            gone.append(int(key))
        else:
            session.progress(f"droplet {rec['name']} (id {key}) is in the state but lacks the tag "
                             f"{tag_for(session.inventory.name)}; fab teardown destroys it by id")
    if gone:
        forget(session, gone)


def ssh_key_id(session: Session, client: Client) -> int:
    """The account's id of the inventory's public key, registering it if the account lacks it.

    Matched by fingerprint. The state remembers whether fleet registered it,
    because teardown deletes only keys fleet created.
    """
    inv = session.inventory
    public = inv.droplet_key[0].read_text().strip()
    fp = fingerprint(public)
    section = _section(session.state.data)
    before = section.get("ssh_key") or {}
    match = next((k for k in client.ssh_keys() if k.fingerprint == fp), None)
    created = bool(match and before.get("id") == match.id and before.get("created_by_fleet"))
    if match is None:
        try:
            match = client.add_ssh_key(f"fleet-{inv.name}", public)
        except Uncertain as e:
            session.progress(f"{e}; looking for the key before trying again")
            time.sleep(POLL)
            match = next((k for k in client.ssh_keys() if k.fingerprint == fp), None)
            if match is None:
                raise CloudError(f"{e}; and the account does not have the key") from None
        created = True
        session.progress(f"registered SSH key {fp} as fleet-{inv.name}")
    with session.state.lock:
        section["ssh_key"] = {"id": match.id, "fingerprint": fp, "created_by_fleet": created}
        session.state.save()
    return match.id


def create(session: Session, client: Client, names: Sequence[str], key_id: int) -> list[Droplet]:
    """Create droplets in batches of 10; each batch's ids reach the state file as soon as the API answers.

    A lost answer (Uncertain) is followed by a look at the tag: names that
    exist now are not created again.
    """
    inv, do = session.inventory, session.inventory.model.digitalocean
    tag, made, pending, lost = tag_for(inv.name), [], list(names), 0
    while pending:
        batch = batches(pending)[0]
        session.progress(f"creating {len(batch)} droplet{'s' * (len(batch) != 1)}: {', '.join(batch)}")
        try:
            got = client.create_droplets(batch, region=do.region, size=do.size, image=do.image,
                                         ssh_keys=[key_id], tags=[tag])
            if not got:
                raise CloudError(f"DigitalOcean accepted the create request for {', '.join(batch)} "
                                 "but returned no droplet")
        except Uncertain as e:
            lost += 1
            if lost > CREATE_TRIES:
                raise CloudError(f"{e}; gave up after {lost} tries. Droplets created so far are recorded and tagged: "
                                 "fab provision adopts them, fab teardown destroys them") from None
            session.progress(f"{e}: looking for them by tag before trying again")
            time.sleep(POLL * lost)
            got = [d for d in client.droplets(tag) if d.name in batch]
        remember(session, got)
        made += got
        done = {d.name for d in got}
        pending = [n for n in pending if n not in done]
    return made


def wait_usable(session: Session, client: Client, tag: str, waiting: Waiting) -> None:
    """Wait, bounded by ``timeouts.droplet``, for each droplet: active with a public IPv4, then SSH and cloud-init.

    The API is asked once per round for the whole tag (not once per droplet),
    which keeps a large fleet far below the rate limit.
    """
    inv = session.inventory
    deadline = time.monotonic() + inv.timeouts.droplet
    active: dict[int, Droplet] = {}
    last, last_print = "", 0.0
    while True:
        listed = {d.id: d for d in client.droplets(tag)}
        now_active = []
        for i in waiting.names:
            if i in listed:
                waiting.seen[i] = listed[i]
                if listed[i].usable and i not in active:
                    active[i] = listed[i]
                    now_active.append(listed[i])
        if now_active:
            remember(session, now_active)
        line = status_line(waiting.names, waiting.seen, set(active))
        if line != last or time.monotonic() - last_print > 15:
            session.progress(line)
            last, last_print = line, time.monotonic()
        if len(active) == len(waiting.names) or time.monotonic() >= deadline:
            break
        time.sleep(POLL)
    for i in waiting.names:
        if i not in active:
            waiting.failed[i] = (f"did not become usable within {inv.timeouts.droplet} s "
                                 f"(last seen: {_why(waiting.seen.get(i))})")
    check = {i: d for i, d in active.items() if not _was_ready(session, i)}
    waiting.ready |= set(active) - set(check)
    if check:
        _answering(session, check, deadline, waiting)


def _answering(session: Session, droplets: dict[int, Droplet], deadline: float, waiting: Waiting) -> None:
    """SSH answers (banner) by the deadline, then cloud-init has finished: checked in parallel."""
    inv = session.inventory
    by_host = {h.address: h for h in hosts_from_state(inv, session.state.data)}

    def work(droplet_id: int) -> None:
        d = droplets[droplet_id]
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
        _mark_ready(session, droplet_id)

    outcomes = fan_out(list(droplets), work, parallel=inv.model.parallel,
                       label=lambda i: f"{droplets[i].name} ({droplets[i].public_ipv4}) SSH", progress=session.progress)
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


def settle(session: Session, client: Client, waiting: Waiting) -> list[Outcome]:
    """Destroy the fresh droplets that failed; report every failure as that droplet's row."""
    doomed = [waiting.seen.get(i) or Droplet(i, waiting.names[i], "new", None) for i in waiting.failed if i in waiting.fresh]
    left = {d.id for d in destroy(session, client, doomed)} if doomed else set()
    outcomes = []
    for i, reason in sorted(waiting.failed.items(), key=lambda kv: waiting.names[kv[0]]):
        name = waiting.names[i]
        if i not in waiting.fresh:
            after = "left running: it worked before and may hold students' work"
            session.unusable.add((waiting.seen.get(i) or Droplet(i, name, "", None)).public_ipv4 or name)
        elif i in left:
            after = "destroy requested but it is still listed; fab teardown finishes it"
        else:
            after = "destroyed"
        outcomes.append(Outcome(Host(address=name, user="root", port=SSH_PORT, key=None),
                                error=f"droplet {name} (id {i}) {reason}; {after}"))
        session.progress(f"droplet {name} (id {i}): {reason}; {after}")
    return outcomes


# --- destroying -----------------------------------------------------------------


def destroy(session: Session, client: Client, droplets: Sequence[Droplet], *, by_tag: bool = False) -> list[Droplet]:
    """Destroy droplets and wait, bounded by ``timeouts.droplet``, until the API no longer has them.

    Gone means: not listed under the tag AND a 404 for the id (a droplet whose
    tag was removed by hand is still found by its id). Destroyed droplets
    leave the state; returns those still there at the deadline.
    """
    tag, timeout = tag_for(session.inventory.name), session.inventory.timeouts.droplet
    deadline = time.monotonic() + timeout
    for d in droplets:
        client.destroy_droplet(d.id)
    if by_tag:
        client.destroy_tagged(tag)
    left = {d.id: d for d in droplets}
    rounds = 0
    while True:
        listed = {d.id: d for d in client.droplets(tag)}
        gone = [i for i in left if i not in listed and client.droplet(i) is None]
        forget(session, gone)
        for i in gone:
            left.pop(i)
        if by_tag:  # teardown: anything tagged goes, even a droplet created after the survey
            left.update(listed)
        if not left:
            return []
        if time.monotonic() >= deadline:
            return list(left.values())
        rounds += 1
        if rounds % 10 == 0:  # a delete that was lost or ignored: ask again
            for i in left:
                client.destroy_droplet(i)
            if by_tag:
                client.destroy_tagged(tag)
        session.progress(f"waiting for {len(left)} droplet{'s' * (len(left) != 1)} to be gone: "
                         + ", ".join(sorted(d.name for d in left.values())))
        time.sleep(POLL)


# --- teardown ---------------------------------------------------------------------


@dataclass
class Survey:
    """What teardown will destroy: every droplet with the tag, and every id the state knows."""

    client: Client
    tag: str
    droplets: list[Droplet]
    ssh_key: dict | None

    def describe(self) -> str:
        if not self.droplets:
            return f"DigitalOcean: no droplet carries the tag {self.tag}"
        n = len(self.droplets)
        rows = [f"  {d.name} (id {d.id}, {d.public_ipv4 or 'no address'}, {d.status})" for d in self.droplets]
        return f"DigitalOcean: destroy {n} droplet{'s' * (n != 1)} tagged {self.tag}:\n" + "\n".join(rows)


def has_droplets(inventory: Inventory, state_data: dict) -> bool:
    """Whether teardown must look at DigitalOcean: the inventory asks for droplets or the state knows some."""
    return inventory.model.digitalocean is not None or bool(_records(state_data))


def survey(session: Session, client: Client | None = None) -> Survey:
    client = client or client_for(session)
    tag = tag_for(session.inventory.name)
    found = {d.id: d for d in client.droplets(tag)}
    for key in _records(session.state.data):
        if int(key) not in found:
            d = client.droplet(int(key))
            if d is not None:
                found[d.id] = d
    droplets = sorted(found.values(), key=lambda d: (number_of(session.inventory.name, d.name) or 0, d.name, d.id))
    return Survey(client, tag, droplets, _section(session.state.data).get("ssh_key"))


def teardown(session: Session, plan: Survey) -> str:
    """Destroy everything the survey found and anything tagged since; poll until the tag lists nothing.

    Then deletes the SSH key, if fleet registered it. Raises CloudError
    (exit 1) naming what is left when the time limit passes.
    """
    left = destroy(session, plan.client, plan.droplets, by_tag=True)
    if left:
        raise CloudError(f"{len(left)} droplet(s) still exist after {session.inventory.timeouts.droplet} s: "
                         + ", ".join(f"{d.name} (id {d.id})" for d in left)
                         + "; run fab teardown again and check DigitalOcean's control panel")
    forget(session, [int(k) for k in _records(session.state.data)])
    note = _drop_key(session, plan.client, plan.ssh_key)
    return (f"DigitalOcean: destroyed {len(plan.droplets)} droplet{'s' * (len(plan.droplets) != 1)}; "
            f"the API lists no droplet tagged {plan.tag}. {note}")


def _drop_key(session: Session, client: Client, key: dict | None) -> str:
    if not key:
        return "No SSH key recorded as registered by fleet; none deleted."
    if not key.get("created_by_fleet"):
        return f"SSH key {key['fingerprint']} was in the account before fleet; left there."
    client.delete_ssh_key(int(key["id"]))
    with session.state.lock:
        _section(session.state.data)["ssh_key"] = None
        session.state.save()
    return f"Deleted the SSH key fleet had registered ({key['fingerprint']})."

