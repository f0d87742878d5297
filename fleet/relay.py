"""``push: true`` that sends an image out of this computer once, and the hosts pass it on as it arrives.

A teacher's laptop uplink is the slowest link in the room, so the hosts relay
the image among themselves in a **pipelined chain**: this computer streams
``docker save`` once, to the first host that needs the image; every other
host reads the bytes from the host before it *while that host is still
receiving them*. The last host therefore has the image about one transfer
time after the first byte, not N transfer times (shared/notes/IMAGE-FANOUT.md).

On each host, the receiver (:data:`RECEIVE`):

1. writes the incoming bytes to a file, ``/var/tmp/fleet-relay-FLEET/IMAGE.tar``
   (from this computer on stdin, or from the previous host over SSH), and
   notes the writer's PID beside it;
2. waits (bounded) until the host's Docker answers, since the bytes may
   start to arrive while Docker is still being installed, and feeds
   ``docker load`` from that growing file (``tail -f --pid``), so a slow load
   never slows the chain down;
3. prints the image id it has at the end, which must equal this computer's.

The next host reads that file with a **one-time key**: fleet makes an
ed25519 key pair per chain (per image, per course data stream) in memory
(it never touches this computer's disk: one pair per chain, since sshd takes
the first line that matches a key, and each line's forced command streams one
file) and appends its public half to each relaying host's ``authorized_keys``,
restricted to ``from="<the fleet's other hosts>"``, to the one forced command
that streams that file (:func:`follow_command`, through ``sudo -n`` for a
non-root user), to ``no-pty`` and no forwarding of any kind and no
``~/.ssh/rc``. The private key reaches the reading host on the command's
stdin (never in argv) into a 0700 directory, beside a ``known_hosts`` that
holds only the previous host's key as this computer verified it, used with
``StrictHostKeyChecking=yes``; the directory is removed when the command
ends. After every host is done (also after failures), each relaying host's
key line and relay file are removed over its own connection, which stays
open until then.

A host that cannot read from the host before it (no SSH client, a firewall
between hosts, a sudo password, a broken predecessor, ...) reads from a host
that already has the whole image, and failing that gets it straight from
this computer; the progress output says which and why.

Why the reader pulls rather than the previous host pushing: a leaked key can
only read an image the class is about to receive anyway, never load one into
a host's Docker as root.

Course data (``data:``, fleet/coursedata.py) travels the same way: the hosts
whose :class:`~fleet.steps.SendFiles` step is the same (the same files for
the same manifest) form a chain of their own, and each host's sync
(fleet/filesync.py) unpacks the stream from its relay file as it grows
(:data:`RECEIVE_FILES`).

The pieces that decide (the hosts' scripts, key lines, argv) are pure functions in
fleet/relayhost.py; ``Relay`` here is the thin stateful part that ``fleet.converge.provision`` drives.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from fleet import filesync
from fleet.errors import HostError
from fleet.events import Event, emit, wants_events
from fleet.hostkeys import HostKeys, known_hosts_name
from fleet.inventory import Host
from fleet.relayhost import (
    OneTimeKey,
    authorized_line,
    eta,
    files_key,
    folder,
    follow_command,
    install_argv,
    known_hosts_line,
    marker,
    new_key,
    receive_argv,
    receive_files_argv,
    relay_file,
    remove_argv,
    source_addresses,
)
from fleet.runner import STOP, Interrupted
from fleet.ssh import Remote
from fleet.steps import PushImage, SendFiles

REPORT_EVERY = 5.0  # seconds between two progress lines of one image

# --- the stateful part ------------------------------------------------------------


class Connector(Protocol):
    """What the relay needs of a provision run: connections, trusted host keys, progress."""

    keys: HostKeys

    def connect(self, host: Host) -> Remote: ...

    def progress(self, line: str) -> None: ...


@dataclass
class _Link:
    """A host in an image's chain: where its copy is, whether others may read it, how far it got."""

    host: Host
    remote: Remote
    path: str
    opened: threading.Event = field(default_factory=threading.Event)  # its key is in place (or failed to be)
    finished: threading.Event = field(default_factory=threading.Event)
    ok: bool = False  # it has the whole image
    why_not: str = ""  # why others cannot read from it ("" when they can)
    received: int = 0  # bytes so far


class Relay:
    """One provision run's image relay: chains the hosts, lets each read from the one before, cleans up.

    Thread-safe: every host's worker calls :meth:`deliver` for its PushImage steps.
    """

    def __init__(self, session: Connector, fleet: str, local_ids: dict[str, str], hosts: tuple[Host, ...],
                 command_timeout: int = 300, sizes: dict[str, int] | None = None):
        self.session = session
        self.fleet = fleet
        self.local_ids = local_ids
        self.hosts = hosts
        self.command_timeout = command_timeout
        self.sizes = sizes or {}  # image → bytes, for the ETA
        self.lock = threading.Lock()
        self.chains: dict[str, list[_Link]] = {}
        self.relayed: list[tuple[str, str, str]] = []  # (image, from, to)
        self.fallbacks: list[tuple[str, str, str]] = []  # (image, receiver, why)
        self._keys: dict[str, OneTimeKey] = {}  # one key pair per chain: a key's line names the one file it streams
        self._this_run = secrets.token_hex(4)  # marks this run's key lines: marker(fleet, THIS_RUN-...)
        self._kept: list[Remote] = []
        self._told: dict[str, float] = {}
        self._started: dict[str, float] = {}

    # --- connections --------------------------------------------------------

    @contextmanager
    def connect(self, host: Host) -> Iterator[Remote]:
        """The host's one connection; a relaying host's stays open until :meth:`close` has cleaned it."""
        remote = self.session.connect(host)
        try:
            yield remote
        finally:
            with self.lock:
                keep = remote in self._kept
            if not keep:
                remote.close()

    # --- delivering an image ------------------------------------------------

    def deliver(self, step: PushImage, host: Host, remote: Remote, cancel: threading.Event | None = None) -> None:
        """Get ``step.image`` onto the host: from the host before it in the chain, else from this computer."""
        image = step.image
        deadline = time.monotonic() + step.timeout
        me, before = self._join(image, host, remote)
        try:
            self._offer(me, image)
            self._receive(step, me, before, deadline, cancel)
            me.ok = True
        finally:
            me.finished.set()
            if wants_events(self.session.progress):
                self._report(image, final=True)

    def deliver_files(self, step: SendFiles, host: Host, remote: Remote, cancel: threading.Event | None = None) -> None:
        """Bring course data to the host: read from a host receiving the very same stream (the same files for the same
        manifest: usually every host), as it arrives there, else from this computer (the first such host only)."""
        key = files_key(step)
        deadline = time.monotonic() + step.timeout
        me, before = self._join(key, host, remote)
        try:
            self._offer(me, key)

            def read(source: _Link) -> None:
                remote.run(receive_files_argv(me.path, step, source.host, self._known_hosts(source)),
                           stdin=self._keys[key].private, timeout=max(1, int(deadline - time.monotonic())),
                           title=f"get course data from {source.host.id}", cancel=cancel)

            if not self._from_hosts(key, me, before, deadline, read, what=step.title.removeprefix("send "),
                                    step_what="course data", named="the course data", title=step.title):
                remote.run(receive_files_argv(me.path, step), stdin=remote.count_data(filesync.chunks(step)),
                           timeout=max(1, int(deadline - time.monotonic())), title=step.title, cancel=cancel)
            me.ok = True
        finally:
            me.finished.set()

    def _join(self, key: str, host: Host, remote: Remote) -> tuple[_Link, _Link | None]:
        """The host's place at the end of the chain of ``key`` (an image, or a course data stream); the link before it."""
        me = _Link(host, remote, relay_file(self.fleet, key))
        with self.lock:
            chain = self.chains.setdefault(key, [])
            before = chain[-1] if chain else None
            chain.append(me)
            self._started.setdefault(key, time.monotonic())
            self._kept.append(remote)  # from here on it holds relay files (and maybe a key) to remove at the end
        return me, before

    def _offer(self, me: _Link, key: str) -> None:
        """Let the next hosts read from this one (the one-time key in place), or note why they cannot."""
        try:
            me.why_not = self._open(me, key) if len(self.hosts) > 1 else "no other host"
        except HostError as e:
            me.why_not = f"could not add the one-time key: {e}"
        finally:
            me.opened.set()

    def _receive(self, step: PushImage, me: _Link, before: _Link | None, deadline: float,
                 cancel: threading.Event | None) -> None:
        image, host = step.image, me.host

        def read(source: _Link) -> None:
            self._run(me, receive_argv(me.path, image, source.host, self._known_hosts(source)), step, deadline,
                      cancel, stdin=self._keys[image].private)

        if self._from_hosts(image, me, before, deadline, read, what=f"image {image}", step_what=f"image {image}",
                            named=image, title=step.title):
            return
        if before is None:
            self.session.progress(Event(f"  {host.id}: {step.title}", "step", host=host.id, step=step.title))
        self._run(me, receive_argv(me.path, image), step, deadline, cancel, from_here=True)

    def _from_hosts(self, key: str, me: _Link, before: _Link | None, deadline: float,
                    read: Callable[[_Link], None], *, what: str, step_what: str, named: str, title: str) -> bool:
        """Read ``key`` from the hosts :meth:`_sources` names, in order, until a read works (True). Else False, and
        when a host came before this one, a line saying why this computer sends ``named`` instead."""
        host, why = me.host, ""
        for source in self._sources(key, me, before, deadline):
            self.session.progress(Event(f"  {host.id}: get {what} from {source.host.id} (host to host, as it arrives)",
                                        "step", host=host.id, step=f"get {step_what} from {source.host.id}"))
            try:
                read(source)
            except Interrupted:
                raise
            except HostError as e:
                why = f"relay from {source.host.id} failed: {e}"
                continue
            with self.lock:
                self.relayed.append((key, source.host.id, host.id))
            return True
        if before is not None:
            why = why or f"no relay from {before.host.id} ({before.why_not or 'it failed'})"
            self.session.progress(Event(f"  {host.id}: {why}; sending {named} from this computer instead", "step",
                                        host=host.id, step=f"{title} ({why})"))
            with self.lock:
                self.fallbacks.append((key, host.id, why))
        return False

    def _sources(self, image: str, me: _Link, before: _Link | None, deadline: float) -> Iterator[_Link]:
        """The hosts to read from, in order: the one before, then any that has the whole image."""
        if before is None:
            return
        self._wait(before.opened, deadline, f"get image {image} from {before.host.id}")
        tried = set()
        if not before.why_not and image in self._keys:
            tried.add(id(before))
            yield before
        with self.lock:
            done = [link for link in self.chains[image] if link.ok and not link.why_not and id(link) not in tried]
        if done and image in self._keys:
            yield done[0]

    def _run(self, me: _Link, argv: tuple[str, ...], step: PushImage, deadline: float,
             cancel: threading.Event | None, *, stdin: bytes | None = None, from_here: bool = False) -> None:
        def heard(line: str) -> None:
            if line.startswith("received ") and line[9:].isdigit():
                me.received = int(line[9:])
                self._report(step.image)

        timeout = max(1, int(deadline - time.monotonic()))
        if from_here:
            result = me.remote.push_image(step.image, timeout=timeout, title=step.title, into=argv, on_line=heard,
                                          cancel=cancel)
        else:
            result = me.remote.run(argv, stdin=stdin, timeout=timeout, title=f"get image {step.image}", on_line=heard,
                                   cancel=cancel)
        got = (result.stdout.strip().splitlines() or [""])[-1]
        if got != self.local_ids.get(step.image):
            raise HostError(f"{step.title}: the host has image id {got or 'none'} afterwards, not this computer's")

    def _report(self, image: str, *, final: bool = False) -> None:
        """Now and then, one line: how many hosts have the image, the slowest's bytes, the rate, the time left
        (and, for a live view, the same as an event every time a host says how far it got)."""
        now = time.monotonic()
        with self.lock:
            line = not final and now - self._told.get(image, 0.0) >= REPORT_EVERY
            if not line and not wants_events(self.session.progress):
                return
            if line:
                self._told[image] = now
            chain = list(self.chains.get(image, []))
            started = self._started.get(image, now)
        total = self.sizes.get(image, 0)
        done = sum(1 for link in chain if link.ok)
        busy = [link.received for link in chain if not link.finished.is_set()]
        if not busy and not final:
            return
        slowest = min(busy) if busy else max((link.received for link in chain), default=0)
        rate = max(link.received for link in chain) / max(now - started, 0.1)  # the chain moves at its source's pace
        size = f" of about {total / 1e6:.0f} MB" if total else ""
        text = (f"  image {image}: {done} of {len(chain)} hosts have it; slowest at {slowest / 1e6:.0f} MB{size}, "
                f"{rate / 1e6:.1f} MB/s{eta(total, slowest, rate)}") if line else ""
        emit(self.session.progress, Event(text, "transfer", plain=line, image=image, received=slowest, size=total,
                                          rate=rate, have=done, of=len(chain)))

    def _open(self, me: _Link, image: str) -> str:
        """Let the other hosts read this host's copy as it arrives; '' when they can, else why not."""
        host, remote = me.host, me.remote
        if host.user != "root" and remote.sudo_password is not None:
            return "its sudo needs a password, which a forced command cannot give"
        others = source_addresses([h for h in self.hosts if h.id != host.id])
        if not others:
            return "no other host to serve"
        with self.lock:
            if image not in self._keys:
                self._keys[image] = new_key()
            key = self._keys[image]
        line = authorized_line(key.public, others, follow_command(me.path, host.user),
                               marker(self.fleet, f"{self._this_run}-{secrets.token_hex(4)}"))
        remote.run(install_argv(host.user, line, marker(self.fleet), marker(self.fleet, f"{self._this_run}-")),
                   timeout=self.command_timeout,
                   title="accept a one-time key for the image relay")
        return ""

    def _known_hosts(self, link: _Link) -> str:
        """The relaying host's SSH key as this computer verified it: pinned in the state, else the live one."""
        pinned = self.session.keys.pinned.get(known_hosts_name(link.host))
        if pinned:
            keytype, blob = pinned.split(" ", 1)
        else:
            server_key = link.remote.conn.client.get_transport().get_remote_server_key()
            keytype, blob = server_key.get_name(), server_key.get_base64()
        return known_hosts_line(link.host, keytype, blob)

    def _wait(self, event: threading.Event, deadline: float, title: str) -> None:
        while not event.wait(0.2):
            STOP.check(title)
            if time.monotonic() > deadline:
                raise HostError(f"{title}: gave up waiting for it")

    def stats(self) -> dict:
        with self.lock:
            return {"seeds": {image: chain[0].host.id for image, chain in self.chains.items() if chain},
                    "relayed": [list(r) for r in self.relayed], "fallbacks": [list(f) for f in self.fallbacks]}

    # --- cleaning up --------------------------------------------------------

    def close(self, warn: Callable[[str], None] | None = None) -> list[str]:
        """Remove the one-time keys and relay files from every host (also after failures); returns what is left."""
        warn = warn or self.session.progress
        with self.lock:
            kept, self._kept = self._kept, []
        left = []
        for remote in dict.fromkeys(kept):
            host = remote.host
            argv = remove_argv(host.user, marker(self.fleet), self.fleet)
            try:
                try:
                    remote.run(argv, timeout=60, title="remove the image relay's one-time key and files")
                except HostError:  # its connection may have broken meanwhile: one more try on a new one
                    with self.session.connect(host) as again:
                        again.run(argv, timeout=60, title="remove the image relay's one-time key and files")
            except HostError as e:
                left.append(f"{host.id}: {e}")
                warn(f"WARNING: {host.id}: the image relay's one-time key could not be removed "
                     f"({e}); remove the line marked {marker(self.fleet)} from ~{host.user}/.ssh/authorized_keys "
                     f"and the folder {folder(self.fleet)}")
            finally:
                remote.close()
        return left
