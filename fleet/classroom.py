"""Running the class once the fleet is up: reset a seat, hand out and collect work, logs, upgrades (moving a
student to a spare seat: fleet/move.py).

Seats are named as a teacher names them: a number (the seat's place in the
handout, counting from 1), a student's name from the roster, or HOST/SEAT
(e.g. 192.0.2.10/notebook-3). Students' files live in one volume per seat
(see commands.seat_args), so a reset or an upgrade keeps them.
"""
from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fleet import commands, coursedata, placement, roster
from fleet.converge import provision
from fleet.errors import HostError, InputError
from fleet.inventory import Host, Inventory
from fleet.report import HostReport
from fleet.runner import Outcome
from fleet.seats import Seat
from fleet.session import Session
from fleet.ssh import Remote
from fleet.steps import Run

# --- naming a seat ------------------------------------------------------------


def seat_order(session: Session) -> list[tuple[Host, Seat]]:
    return placement.seats_in_order(session.inventory, session.state)


def students(session: Session) -> dict[tuple[str, str], str]:
    """(host id, container) → the student placed there by the roster."""
    return {(v["host"], v["container"]): v["name"] for v in session.state.data.get("roster", {}).values()}


def select(order: list[tuple[Host, Seat]], placed: dict[tuple[str, str], str], selector: str) -> tuple[Host, Seat]:
    """The seat a teacher means by ``selector``; InputError listing the ways to name one."""
    text = selector.strip()
    if text.isdigit():
        n = int(text)
        if 1 <= n <= len(order):
            return order[n - 1]
        raise InputError(f"there is no seat {n}: the fleet has seats 1-{len(order)} (in handout order)", field="--seat")
    if "/" in text:
        host_id, _, name = text.rpartition("/")
        for host, seat in order:
            if host.id == host_id and name in (seat.container, f"{seat.service.name}-{seat.number}"):
                return host, seat
    wanted = roster.key(text)
    for host, seat in order:
        if roster.key(placed.get((host.id, seat.container), "")) == wanted:
            return host, seat
    raise InputError(
        f"no seat is called {selector!r}; name a seat by its number in the handout (1-{len(order)}), "
        "a student's name from the roster, or HOST/SEAT like "
        f"{order[0][0].id}/{order[0][1].service.name}-{order[0][1].number}", field="--seat")


def label(host: Host, seat: Seat, placed: dict[tuple[str, str], str]) -> str:
    """What a seat's folder and report line are called: the student's name, else HOST-SEAT."""
    student = placed.get((host.id, seat.container))
    return student or f"{host.id.replace(':', '_')}-{seat.service.name}-{seat.number}"


# --- reset ----------------------------------------------------------------------


def reset(session: Session, host: Host, seat: Seat, *, wipe: bool) -> list[Outcome[Host, HostReport]]:
    """Recreate one seat's container with the same credentials; with ``wipe`` its files go too."""
    timeout = session.inventory.timeouts.command

    def remove(_: Host, remote: Remote) -> None:
        remote.apply(Run(f"remove {seat.container}", commands.remove(seat.container), timeout))
        if wipe:
            remote.apply(Run(f"empty the work volume of {seat.container}", commands.volume_remove(seat.volume), timeout))

    return provision(session, hosts=(host,), only={seat.container}, prepare=remove)


# --- distribute and collect -------------------------------------------------------


def pack(src: Path) -> bytes:
    """The folder's content as a tar stream (names relative to it, no owners: the seat's user will own them)."""
    if not src.is_dir():
        raise InputError(f"{src} is not a folder", field="--src")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(src.rglob("*")):
            if path.is_symlink():
                continue  # a link could point anywhere on the seat; exercises are plain files
            info = tar.gettarinfo(path, arcname=str(path.relative_to(src)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_file():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            elif path.is_dir():
                tar.addfile(info)
    return buf.getvalue()


def exec_argv(seat: Seat, *argv: str, stdin: bool = False) -> tuple[str, ...]:
    """docker exec as the user who owns the seat's files."""
    return commands.exec_in(seat.container, *argv, user=seat.service.exec_user, stdin=stdin)


@dataclass
class Copied:
    seat: str
    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)  # files left out (too large) or kept (the student's own)


@dataclass(frozen=True)
class Place:
    """Where one student's files are: a seat's work folder, or (mode: hub) their volume on a node."""

    name: str  # what the table calls it: the seat's container, or the student's login
    folder: str  # collect's sub-folder: the student's name, else HOST-SEAT or the login
    work_dir: str
    argv: Callable[..., tuple[str, ...]]  # (*command, stdin=False) → the argv running it there as the files' owner
    exclude: tuple[str, ...] = ()  # folders inside work_dir that are not the student's (the course data's mount)


def excluded(inventory: Inventory, seat: Seat) -> tuple[str, ...]:
    """What of a seat's work folder is not the student's: the course data mounted inside it."""
    inside = coursedata.inside_work(inventory, seat.service)
    return (inside,) if inside else ()


def _each_place(session: Session, act: Callable[[Remote, Host, Place], Copied], *,
                empty_spares: bool = True) -> list[Outcome[Host, list[Copied]]]:
    """Run ``act`` for every student's files, host by host over one connection each, hosts in parallel
    (``empty_spares``: also on spare seats nobody was moved to)."""
    if session.inventory.model.mode == "hub":
        return _each_volume(session, act)
    placed = students(session)
    seats = [(h, s) for h, s in seat_order(session) if empty_spares or not s.spare or (h.id, s.container) in placed]

    def work(host: Host) -> list[Copied]:
        out = []
        with session.connect(host) as remote:
            for h, seat in seats:
                if h == host and seat.service.work_dir:
                    place = Place(seat.container, label(host, seat, placed), seat.service.work_dir,
                                  lambda *argv, stdin=False, seat=seat: exec_argv(seat, *argv, stdin=stdin),
                                  excluded(session.inventory, seat))
                    out.append(act(remote, host, place))
        return out

    return session.fan_out(work)  # type: ignore[arg-type]


# The students' volumes on a node (the hub's spawner labels them with the fleet and the login).
VOLUMES = 'docker volume ls --filter "label=fleet.name=$1" --format \'{{.Name}} {{.Label "fleet.hub.user"}}\''


def _each_volume(session: Session, act: Callable[[Remote, Host, Place], Copied]) -> list[Outcome[Host, list[Copied]]]:
    """mode: hub: every student's volume, on whichever node holds it, through a throw-away container of the
    students' image (on every node) running as jovyan (uid 1000), the volume at the server's home."""
    inv = session.inventory
    image, home = inv.services[0].image, inv.services[0].work_dir or "/home/jovyan"
    names = {login: name for name, login in session.state.data.get("hub", {}).get("logins", {}).items()}

    def work(host: Host) -> list[Copied]:
        out = []
        with session.connect(host) as remote:
            listed = remote.run(("sh", "-c", VOLUMES, "sh", inv.name), timeout=inv.timeouts.command,
                                title="list the students' volumes").stdout
            for line in listed.splitlines():
                volume, _, login = line.strip().partition(" ")
                if not volume or not login:
                    continue
                place = Place(login, names.get(login, login), home,
                              lambda *argv, stdin=False, v=volume: commands.run_once(image, v, home, *argv, user="1000",
                                                                                    stdin=stdin))
                out.append(act(remote, host, place))
        return out

    return session.fan_out(work)  # type: ignore[arg-type]


# $1 work dir; the tar stream on stdin. GNU tar names each file it keeps: "tar: NAME: skipping existing file".
UNPACK_KEEP = 'cd "$1" && tar -x --skip-old-files --verbose'
UNPACK_FORCE = 'cd "$1" && tar -x --overwrite'


def kept_files(output: str, names: list[str]) -> list[str]:
    """The files of the archive that a seat already had, from tar's verbose output."""
    said = {line[5:-len(": skipping existing file")] for line in output.splitlines()
            if line.startswith("tar: ") and line.endswith(": skipping existing file")}
    return [n for n in names if n in said]


def distribute(session: Session, src: Path, *, force: bool) -> list[Outcome[Host, list[Copied]]]:
    """Copy ``src`` into every seat's work folder (mode: hub: every student's volume that exists), owned by the
    files' user; keep students' files unless ``force``."""
    data = pack(src)
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(data)).getmembers() if m.isfile()]
    timeout = session.inventory.timeouts.command

    def act(remote: Remote, host: Host, place: Place) -> Copied:
        script = UNPACK_FORCE if force else UNPACK_KEEP
        result = remote.run(place.argv("sh", "-c", script, "sh", place.work_dir, stdin=True),
                            timeout=timeout, stdin=data, title=f"copy into {place.name}")
        kept = kept_files(result.stdout + "\n" + result.stderr, names)
        return Copied(place.name, len(names) - len(kept), 0, kept)

    return _each_place(session, act)


# $1 work dir, $2 largest file in KiB (as find rounds: up), then folders inside it to leave out (the course
# data's mount: the teacher's files, read-only): lists the files too large on stderr, sends the others as a tar
# stream on stdout.
PACK_WORK = r"""
cd "$1" || exit 1
kib=$2
shift 2
for p; do shift; set -- "$@" -path "./$p" -prune -o; done
find . "$@" -type f -size +"$kib"k -print | sed 's/^/too large: /' >&2
find . "$@" -type f \( -size -"$kib"k -o -size "$kib"k \) -print0 | tar --null -c -T -
"""
# $1 a seat's work volume, then PACK_WORK's arguments but the folder: PACK_WORK run on the host as root, in the
# volume's folder, so a seat whose container is broken or gone still gives its files back (fab move).
PACK_VOLUME = r"""
vol=$1
shift
dir=$(docker volume inspect --format '{{.Mountpoint}}' "$vol") || exit 1
set -- "$dir" "$@"
""" + PACK_WORK
EVERYTHING_KIB = 1 << 30  # no file is too large to move with its student


def extract(data: bytes, dest: Path) -> tuple[int, int]:
    """Unpack a seat's tar stream safely into ``dest`` (no paths outside it, no devices); (files, bytes)."""
    dest.mkdir(parents=True, exist_ok=True)
    files = size = 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
        tar.extractall(dest, members=members, filter="data")
        for m in members:
            if m.isfile():
                files += 1
                size += m.size
    return files, size


def collect(session: Session, dest: Path, *, max_bytes: int) -> list[Outcome[Host, list[Copied]]]:
    """Bring every seat's work folder (mode: hub: every student's volume) back into DEST/STUDENT-or-HOST-SEAT/,
    skipping files over ``max_bytes`` and the course data (mounted read-only inside it); spare seats only when a
    student was moved there."""
    kib = max(1, max_bytes // 1024)
    timeout = session.inventory.timeouts.push

    def act(remote: Remote, host: Host, place: Place) -> Copied:
        result = remote.run(place.argv("sh", "-c", PACK_WORK, "sh", place.work_dir, str(kib), *place.exclude),
                            timeout=timeout, title=f"pack the work of {place.name}")
        files, size = extract(result.raw, dest / place.folder)
        skipped = [line.removeprefix("too large: ./") for line in result.stderr.splitlines() if line.startswith("too large")]
        return Copied(place.name, files, size, skipped)

    return _each_place(session, act, empty_spares=False)


# --- logs --------------------------------------------------------------------------


def logs(session: Session, host: Host, seat: Seat, *, tail: int, follow: bool,
         emit: Callable[[str], None]) -> None:
    """The seat container's log; with ``follow``, new lines until Ctrl-C (asked every 2 s)."""
    timeout = session.inventory.timeouts.command
    with session.connect(host) as remote:
        since = None
        while True:
            result = remote.run(commands.logs(seat.container, tail=tail, since=since or ""), timeout=timeout,
                                title=f"logs of {seat.container}")
            lines = sorted((result.stdout + result.stderr).splitlines())  # both streams, by timestamp
            for line in lines:
                stamp, _, text = line.partition(" ")
                if since and stamp <= since:
                    continue
                emit(text)
                since = stamp
            if not follow:
                return
            since = since or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            time.sleep(2)


# --- upgrade -----------------------------------------------------------------------


@dataclass
class Batch:
    seats: list[tuple[Host, Seat]]
    healthy: list[str] = field(default_factory=list)
    unhealthy: list[str] = field(default_factory=list)  # "HOST/CONTAINER: why"


def batches(order: list[tuple[Host, Seat]], size: int) -> list[list[tuple[Host, Seat]]]:
    return [order[i:i + size] for i in range(0, len(order), max(1, size))]


def upgrade(session: Session, *, batch: int, wait: int,
            progress: Callable[[str], None]) -> tuple[list[Batch], list[Outcome[Host, HostReport]]]:
    """Replace seats whose spec changed, ``batch`` at a time, each batch answering before the next.

    Stops at the first batch with a seat that does not answer within ``wait``
    seconds (the readiness check of provision: Jupyter logs in with its token):
    the seats of later batches keep running what they ran. Volumes and
    credentials are kept, so students keep their files and passwords.
    """
    done: list[Batch] = []
    for group in batches(seat_order(session), batch):
        b = Batch(group)
        hosts = tuple(dict.fromkeys(h for h, _ in group))
        only = {s.container for _, s in group}
        progress(f"upgrade: {', '.join(f'{h.id}/{s.container}' for h, s in group)}")
        outcomes = provision(session, hosts=hosts, only=only, ready_timeout=wait)
        failed = {o.item.id: o.error for o in outcomes if not o.ok}
        for host, seat in group:
            why = failed.get(host.id)
            (b.unhealthy if why else b.healthy).append(f"{host.id}/{seat.container}" + (f": {why}" if why else ""))
        done.append(b)
        if b.unhealthy:
            return done, outcomes
    return done, []


def check_seat(session: Session, selector: str) -> tuple[Host, Seat]:
    """``select`` over this session's seats; a clear error when the fleet has none yet."""
    order = seat_order(session)
    if not order:
        raise HostError("the fleet has no seats yet; run fab provision first")
    return select(order, students(session), selector)
