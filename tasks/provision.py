from __future__ import annotations

import time

from fabric import task

from fleet import converge, handout, placement
from fleet.session import Session

from .common import HOSTS_HELP, PLAIN_HELP, cli, command, confirmer, finish, progress, session, showing_progress


@task(help={"hosts": HOSTS_HELP, "accept-new-host-key": "trust a host whose SSH key changed (rebuilt server)",
            "yes": "create or destroy DigitalOcean droplets without asking (for scripts)",
            "release-seats": "hand the seats of students removed from the roster to new students: "
                             "new passwords, fresh containers, the old files deleted", "plain": PLAIN_HELP})
@cli
def provision(c, hosts, accept_new_host_key=False, release_seats=False, yes=False, plain=False):
    """Install Docker and run every seat on every host of the inventory.

    Safe to run again: hosts that already match are probed once and left
    alone; changed seats are replaced and seats no longer listed removed.
    Exit status 0 only when every host converged. With a roster, students
    are placed on seats first (exit 2, before any host is touched, when the
    new ones do not fit). With a `digitalocean:` block, the droplets are
    created (after showing their price and asking; --yes skips the question)
    or adopted first, and waited for until SSH answers. On a terminal, a
    live view shows each host's step and how long it has been on it, image
    transfers and the hosts done (--plain: the plain lines of a log).
    """
    started = time.monotonic()
    s = session(c, hosts, accept_new_host_key=accept_new_host_key)
    place_students(s, release=release_seats)
    with showing_progress(plain):
        outcomes = converge.provision(s, confirm=confirmer(yes, "provision"))
    place_students(s)  # droplets created just now take the students who waited for them
    finish(outcomes, started)
    print(f"Handout with passwords and login links: {command('handout --hosts ' + hosts)}")


def place_students(s: Session, *, release: bool = False) -> None:
    """Seat the roster's students (exit 2 before any host is touched when they do not fit) and say what changed."""
    for line in handout.roster_notes(placement.assign_students(s.inventory, s.state, release=release)):
        progress(f"roster: {line}")
