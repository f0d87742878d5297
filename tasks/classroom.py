"""The tasks of the workshop day: reset, distribute, collect, logs, upgrade, move."""
from __future__ import annotations

import time
from pathlib import Path

from fabric import task
from invoke.exceptions import Exit

from fleet import classroom
from fleet import handout as handout_mod
from fleet.errors import InputError
from fleet.inventory import parse_size
from fleet.move import move as move_student
from fleet.report import table
from fleet.usage import human

from .common import HOSTS_HELP, PLAIN_HELP, cli, confirmer, finish, progress, session, showing_progress

SEAT_HELP = "the seat: its number in the handout (1, 2, ...), a student's name, or HOST/SEAT like 192.0.2.10/notebook-3"


@task(help={"hosts": HOSTS_HELP, "seat": SEAT_HELP, "wipe": "also delete the seat's files (asks first)",
            "yes": "do not ask before --wipe deletes files"})
@cli
def reset(c, hosts, seat, wipe=False, yes=False):
    """Recreate one seat's container with the same password or token.

    The student's files stay unless --wipe, which empties the seat's work
    volume after confirmation.
    """
    started = time.monotonic()
    s = session(c, hosts)
    host, chosen = classroom.check_seat(s, seat)
    name = f"{host.id}/{chosen.container}"
    if wipe and not confirmer(yes, "reset --wipe")(f"This deletes every file of seat {name}.", "Delete them? [y/N] "):
        raise Exit("fleet: nothing changed", code=1)
    finish(classroom.reset(s, host, chosen, wipe=wipe), started, verb="reset")


def _copied_table(outcomes: list, verb: str) -> None:
    rows = []
    for o in outcomes:
        if not o.ok:
            rows.append([o.item.id, "-", "-", "-", f"FAILED: {o.error}"])
            continue
        for c in o.value:
            note = f"{len(c.skipped)} {verb}: {', '.join(c.skipped[:3])}{' ...' if len(c.skipped) > 3 else ''}" \
                if c.skipped else ""
            rows.append([o.item.id, c.seat, c.files, human(c.bytes) if c.bytes else "-", note])
    print(table(["HOST", "SEAT", "FILES", "SIZE", "NOTE"], rows))
    if any(not o.ok for o in outcomes):
        raise Exit(code=1)


@task(help={"hosts": HOSTS_HELP, "src": "the folder to copy into every seat's work folder",
            "force": "overwrite files the students already have"})
@cli
def distribute(c, hosts, src, force=False):
    """Copy a folder (today's exercises) into every seat's work folder, owned by the seat's user.

    Files a student already has are kept (their changes are theirs) unless --force.
    """
    _copied_table(classroom.distribute(session(c, hosts), Path(src), force=force), "kept")


@task(help={"hosts": HOSTS_HELP, "dest": "where the seats' folders go (DEST/STUDENT or DEST/HOST-SEAT)",
            "max-size": "leave out files larger than this (default 50m; e.g. 200m, 1g)"})
@cli
def collect(c, hosts, dest, max_size="50m"):
    """Bring back every seat's work folder, one folder per student (or seat).

    Prints a summary of file counts and sizes; files over --max-size are left
    on the seat and listed.
    """
    try:
        limit = parse_size(max_size)
    except ValueError as e:
        raise InputError(str(e), field="--max-size") from None
    _copied_table(classroom.collect(session(c, hosts), Path(dest), max_bytes=limit), "too large, left out")


@task(help={"hosts": HOSTS_HELP, "seat": SEAT_HELP, "follow": "keep printing new lines until Ctrl-C",
            "tail": "how many of the last lines to show first (default 100)"})
@cli
def logs(c, hosts, seat, follow=False, tail=100):
    """Show a seat container's log (both streams, in order)."""
    s = session(c, hosts)
    host, chosen = classroom.check_seat(s, seat)
    classroom.logs(s, host, chosen, tail=tail, follow=follow, emit=print)


@task(help={"hosts": HOSTS_HELP,
            "seat": "the student to move: their name from the roster, or their seat (its number in the handout, "
                    "or HOST/SEAT like 192.0.2.10/notebook-3)",
            "to": "where to: `spare` (default) picks a free spare seat on another host, the one with the fewest "
                  "students; or name a spare as HOST/SEAT (e.g. 192.0.2.11/notebook-4) or by its number",
            "plain": PLAIN_HELP})
@cli
def move(c, hosts, seat, to="spare", plain=False):
    """Move a student off a broken seat or host to a spare seat, with their files, and print their new card.

    Needs `spares: N` on the service (N extra seats per host, started and
    held; provision first). The student's files are copied from their old
    seat when its host still answers (the course data is not); when it does
    not, they move without them and a line says so. The new seat runs with
    their group's limits and must answer before the move counts. Their old
    seat is held (it still has their files and password) until
    `fab provision --release-seats`. The handout and the roster follow: the
    student's card now shows the spare's address and token.
    """
    started = time.monotonic()
    s = session(c, hosts)
    with showing_progress(plain):
        moved, outcomes = move_student(s, seat, to)
    (old_host, old_seat), (new_host, new_seat) = moved.old, moved.new
    where = f"{old_host.id}/{old_seat.container} -> {new_host.id}/{new_seat.container}"
    if any(not o.ok for o in outcomes):
        print(f"fleet: {moved.student} was not moved ({where}): the spare did not come up; they keep their seat")
        finish(outcomes, started, verb="moved")  # the failed row says why; exit 1
    if moved.note:
        print(f"fleet: {moved.student}: {moved.note}")
    files = f"{moved.files} file{'s' * (moved.files != 1)}, {human(moved.bytes)}" if moved.files else "no files"
    print(f"moved {moved.student}: {where} ({files}) in {time.monotonic() - started:.1f} s")
    if moved.card is not None:
        print(handout_mod.render([moved.card], "table"), end="")


@task(help={"hosts": HOSTS_HELP, "batch": "seats replaced at a time (default 5)",
            "wait": "seconds a replaced seat has to answer healthily (default 180)", "plain": PLAIN_HELP})
@cli
def upgrade(c, hosts, batch=5, wait=180, plain=False):
    """Roll the inventory's current image (or any change) to the seats a few at a time.

    Change the service's image in the inventory, then run this instead of
    provision: each batch must answer healthily (Jupyter: logs in with its
    token) before the next starts; the first unhealthy batch stops the
    upgrade and the remaining seats keep running the old image. Files and
    credentials are kept.
    """
    started = time.monotonic()
    with showing_progress(plain):
        batches, failed = classroom.upgrade(session(c, hosts), batch=batch, wait=wait, progress=progress)
    for b in batches:
        for line in b.healthy:
            print(f"upgraded  {line}")
        for line in b.unhealthy:
            print(f"UNHEALTHY {line}")
    seats = sum(len(b.seats) for b in batches)
    stopped = any(b.unhealthy for b in batches)
    print(f"{sum(len(b.healthy) for b in batches)} of {seats} seats upgraded in {time.monotonic() - started:.1f} s"
          + ("; stopped at the first unhealthy batch, the seats after it keep the old image" if stopped else ""))
    if stopped:
        raise Exit(code=1)
