"""``fab move``: a student off a broken seat or host to a free spare, with their files when their host answers.

An exam day's answer to a seat that stops working: the student sits at a
spare (``spares:`` per service) on another host at once, with what they had
written; the old seat is held, not given to anyone else, until the teacher
releases it. Deciding which spare is pure (:func:`pick_spare`); the move
itself is a state change, a provision of one seat and two file copies.
"""
from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass

from fleet import placement, roster
from fleet.classroom import EVERYTHING_KIB, PACK_VOLUME, UNPACK_FORCE, excluded, exec_argv, seat_order, select, students
from fleet.converge import provision
from fleet.errors import HostError, InputError
from fleet.handout import Card
from fleet.inventory import Host
from fleet.report import HostReport
from fleet.runner import Outcome
from fleet.seats import Seat
from fleet.session import Session


@dataclass
class Moved:
    """What ``fab move`` did: who went from which seat to which, with how many of their files."""

    student: str
    old: tuple[Host, Seat]
    new: tuple[Host, Seat]
    files: int = 0
    bytes: int = 0
    note: str = ""  # why the files did not come along ("" when they did)
    card: Card | None = None


def occupied_seats(state_data: dict) -> set[tuple[str, str]]:
    """(host id, container) of every seat a student sits at, is held for, or was moved off."""
    return ({(v["host"], v["container"]) for v in state_data.get("roster", {}).values()}
            | {(v["host"], v["container"]) for v in state_data.get("vacated", [])})


def pick_spare(order: list[tuple[Host, Seat]], occupied: set[tuple[str, str]], old: tuple[Host, Seat],
               to: str) -> tuple[Host, Seat]:
    """The spare a student on ``old`` moves to: ``to`` = ``spare``, a free spare of the same service on another
    host, the one with the fewest seats taken (then in seat order); else ``to`` names one (HOST/SEAT or its
    number), which must be a free spare of that service. InputError saying what there is otherwise."""
    service = old[1].service.name
    if to.strip().lower() != "spare":
        host, seat = select(order, {}, to)
        where = f"{host.id}/{seat.container}"
        if not seat.spare:
            raise InputError(f"{where} is not a spare seat; --to names a spare (spares: in the inventory) or says "
                             "`spare`", field="--to")
        if seat.service.name != service:
            raise InputError(f"{where} is a spare of service {seat.service.name}, not {service}", field="--to")
        if (host.id, seat.container) in occupied:
            raise InputError(f"{where} is not free: a student sits there or it is held", field="--to")
        if (host.id, seat.container) == (old[0].id, old[1].container):
            raise InputError(f"the student already sits at {where}", field="--to")
        return host, seat
    free = [(i, h, s) for i, (h, s) in enumerate(order) if s.spare and s.service.name == service
            and (h.id, s.container) not in occupied and h.id != old[0].id]
    if not free:
        spares = sum(1 for h, s in order if s.spare and s.service.name == service)
        raise InputError(f"no free spare of service {service} on a host other than {old[0].id} ({spares} spare"
                         f"{'s' * (spares != 1)} in all); add `spares:` to the service and provision, or name one "
                         "with --to HOST/SEAT", field="--to")
    load = {h.id: sum(1 for hid, _ in occupied if hid == h.id) for _, h, _ in free}
    _, host, seat = min(free, key=lambda f: (load[f[1].id], f[0]))
    return host, seat


def move(session: Session, selector: str, to: str = "spare") -> tuple[Moved, list[Outcome[Host, HostReport]]]:
    """Move the student at ``selector`` to a spare seat (``to``) with their files; (what was done, the provision
    of the spare).

    1. Their files are packed from the old seat's work volume on its host (as root, so a broken or stopped
       container still gives them back; the course data left out) when the host answers; when it does not,
       the move goes on without them and says so.
    2. The state places the student on the spare; their old seat is held (it still runs with their password
       and files) until ``fab provision --release-seats``.
    3. The spare is provisioned as their seat (their group's limits) and must answer; when it cannot be, the
       placement is put back and the move fails (exit 1).
    4. The files are unpacked into the spare as the seat's user, over anything there.
    """
    inv, state = session.inventory, session.state
    if inv.model.mode == "hub":
        raise InputError("mode: hub has no fixed seats to move between: Swarm starts each student's server "
                         "where there is room", field="--seat")
    order = seat_order(session)
    if not order:
        raise HostError("the fleet has no seats yet; run fab provision first")
    placed = students(session)
    host, seat = select(order, placed, selector)
    student = placed.get((host.id, seat.container))
    if not student:
        raise InputError(f"nobody sits at {host.id}/{seat.container}; name a student, or the seat of one",
                         field="--seat")
    new_host, new_seat = pick_spare(order, occupied_seats(state.data), (host, seat), to)
    moved = Moved(student, (host, seat), (new_host, new_seat))
    packed = _pack_volume(session, host, seat, moved) if seat.service.work_dir else b""  # no work folder: no files
    with state.lock:
        before = {k: json.loads(json.dumps(state.data.get(k))) for k in ("roster", "vacated")}
        state.data.setdefault("roster", {})[roster.key(student)] = {
            "name": student, "host": new_host.id, "container": new_seat.container}
        left = [v for v in state.data.get("vacated", []) if (v["host"], v["container"]) != (host.id, seat.container)]
        left.append({"name": student, "host": host.id, "container": seat.container})
        state.data["vacated"] = sorted(left, key=lambda v: (v["host"], v["container"]))
        state.save()

    def put_back() -> None:
        with state.lock:
            for k, v in before.items():
                if v is None:
                    state.data.pop(k, None)
                else:
                    state.data[k] = v
            state.save()

    try:
        outcomes = provision(session, hosts=(new_host,), only={new_seat.container})
    except BaseException:
        put_back()
        raise
    if not all(o.ok for o in outcomes):
        put_back()
        return moved, outcomes
    if packed:
        try:
            _unpack(session, new_host, new_seat, packed, moved)
        except HostError as e:
            moved.note = f"their files could not be copied in ({e}); they are still in the volume {seat.volume} on {host.id}"
    cards = placement.cards(inv, state, {roster.SeatKey(new_host.id, new_seat.container): student})
    moved.card = next((c for c in cards if (c.host, c.container) == (new_host.id, new_seat.container)), None)
    return moved, outcomes


def _pack_volume(session: Session, host: Host, seat: Seat, moved: Moved) -> bytes:
    """The student's files from the old seat's volume, or b"" with ``moved.note`` saying why not."""
    inv = session.inventory
    try:
        remote = session.connect(host)
    except HostError as e:
        moved.note = f"{host.id} does not answer ({e}); moved without their files"
        return b""
    with remote:
        try:
            result = remote.run(("sh", "-c", PACK_VOLUME, "sh", seat.volume, str(EVERYTHING_KIB), *excluded(inv, seat)),
                                timeout=inv.timeouts.push, title=f"pack the files of {moved.student}")
        except HostError as e:
            moved.note = f"could not read their files on {host.id} ({e}); moved without them"
            return b""
    return result.raw


def _unpack(session: Session, host: Host, seat: Seat, data: bytes, moved: Moved) -> None:
    """The student's files into their new seat, owned by the seat's user; theirs win over what is there."""
    members = [m for m in tarfile.open(fileobj=io.BytesIO(data)).getmembers() if m.isfile()]
    if not members:
        return
    with session.connect(host) as remote:
        remote.run(exec_argv(seat, "sh", "-c", UNPACK_FORCE, "sh", str(seat.service.work_dir), stdin=True),
                   timeout=session.inventory.timeouts.push, stdin=data, title=f"copy {moved.student}'s files in")
    moved.files, moved.bytes = len(members), sum(m.size for m in members)
