"""``push: true`` that sends an image out of this computer once per fleet, however many hosts.

A teacher's laptop uplink is the slowest link in the room, so the hosts pass
the image among themselves:

1. The first host that needs an image (the *seed*) gets it from this computer
   as before (``docker save | docker load`` over its SSH connection).
2. The seed then accepts a one-time key: fleet makes an ed25519 key pair in
   memory (it never touches this computer's disk) and appends its public half
   to the seed's login user's ``authorized_keys``, restricted to
   ``from="<the other hosts' addresses>"``, to the one forced command
   ``docker save IMAGE`` (through ``sudo -n`` for a non-root user) and to
   ``no-pty``, no forwarding of any kind and no ``~/.ssh/rc``.
3. Every other host that needs the image pulls it from the seed over SSH: the
   private key reaches it on the command's stdin (never in argv) into a 0700
   temporary directory, beside a ``known_hosts`` holding only the seed's key as
   this computer verified it (the key pinned in the fleet's state, else the one
   the live connection showed), used with ``StrictHostKeyChecking=yes``; the
   directory is removed when the command ends, whatever the outcome. The host
   then reports the image id it has, which must equal this computer's.
4. After every host is done (also after failures), the seed's line is removed
   over the seed's own connection, which stays open until then: a seed still
   costs one SSH connection.

A host that cannot get the image from the seed (no SSH client, a firewall
between hosts, an address the seed sees differently, a sudo password, ...)
gets it straight from this computer instead, and the progress output says so.

Why pull rather than have the seed push: each host then fetches over its own
connection in its own worker, so nothing waits on another host's turn in the
bounded pool, and a leaked key could only read an image the class is about to
receive anyway, never load one into a host's Docker as root.

The pieces that decide (key lines, argv) are pure functions; ``Relay`` is the
thin stateful part that ``fleet.converge.provision`` drives.
"""
from __future__ import annotations

import ipaddress
import secrets
import shlex
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.errors import HostError
from fleet.inventory import Host
from fleet.runner import STOP, Interrupted
from fleet.ssh import SUDO_PASSWORDLESS, Remote, known_hosts_name
from fleet.steps import PushImage

if TYPE_CHECKING:
    from fleet.converge import Session

MARK = "fleet-relay"  # comment of every key line fleet adds; with the fleet's name it finds stale ones
KEY_OPTIONS = ("no-agent-forwarding", "no-port-forwarding", "no-pty", "no-user-rc", "no-X11-forwarding")

# $1 login user, $2 the authorized_keys line, $3 the fleet's marker prefix: lines left by an interrupted
# run are removed first. Creates ~/.ssh and the file (owned by the user) when missing.
INSTALL_KEY = r"""
set -eu
user=$1 line=$2 mark=$3
home=$(getent passwd "$user" | cut -d: -f6)
group=$(id -gn "$user")
[ -n "$home" ] || { echo "no home directory for $user" >&2; exit 1; }
[ -d "$home/.ssh" ] || install -d -m 700 -o "$user" -g "$group" "$home/.ssh"
f=$home/.ssh/authorized_keys
if [ ! -e "$f" ]; then install -m 600 -o "$user" -g "$group" /dev/null "$f"; fi
if grep -qF -- "$mark" "$f"; then
  tmp=$(mktemp "$f.XXXXXX")
  grep -vF -- "$mark" "$f" > "$tmp" || true
  chown --reference="$f" "$tmp" && chmod --reference="$f" "$tmp"
  mv -f "$tmp" "$f"
fi
if [ -s "$f" ] && [ -n "$(tail -c 1 "$f")" ]; then echo >> "$f"; fi
printf '%s\n' "$line" >> "$f"
"""

# $1 login user, $2 the marker. Removes every line holding the marker; keeps the file's owner and mode.
REMOVE_KEY = r"""
set -eu
user=$1 mark=$2
home=$(getent passwd "$user" | cut -d: -f6)
f=$home/.ssh/authorized_keys
[ -f "$f" ] || exit 0
grep -qF -- "$mark" "$f" || exit 0
tmp=$(mktemp "$f.XXXXXX")
grep -vF -- "$mark" "$f" > "$tmp" || true
chown --reference="$f" "$tmp" && chmod --reference="$f" "$tmp"
mv -f "$tmp" "$f"
"""

# $1 user@seed, $2 port, $3 the seed's known_hosts line, $4 image. stdin: the private key.
# Prints the image id the host has afterwards. The key lives only in a 0700 directory removed on exit.
PULL = r"""
set -eu
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
trap 'exit 130' INT TERM HUP
umask 077
cat > "$d/key"
printf '%s\n' "$3" > "$d/known_hosts"
command -v ssh >/dev/null 2>&1 || { echo "no ssh client on this host" >&2; exit 1; }
{ ssh -T -i "$d/key" -p "$2" -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$d/known_hosts" -o GlobalKnownHostsFile=/dev/null \
    -o ConnectTimeout=15 -o ServerAliveInterval=10 -o ServerAliveCountMax=3 -o LogLevel=ERROR \
    "$1" docker-save </dev/null || echo $? > "$d/failed"; } | docker load >/dev/null
[ ! -e "$d/failed" ] || { echo "ssh to the seed failed (exit $(cat "$d/failed"))" >&2; exit 1; }
docker image inspect --format '{{.Id}}' "$4"
"""


@dataclass(frozen=True)
class OneTimeKey:
    """An ed25519 key pair that exists only in this process's memory."""

    private: bytes = field(repr=False)  # OpenSSH private key format, unencrypted: travels only on stdin
    public: str  # "ssh-ed25519 AAAA..."


def new_key() -> OneTimeKey:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return OneTimeKey(private, public.decode())


def marker(fleet: str, token: str = "") -> str:
    """The comment on a relay key line; without a token, the prefix every line of this fleet shares."""
    return f"{MARK}-{fleet}-{token}" if token else f"{MARK}-{fleet}-"


def forced_command(image: str, user: str) -> tuple[str, ...]:
    """The only command the one-time key may run on the seed: write the image to stdout."""
    argv = ("docker", "save", image)
    return argv if user == "root" else (*SUDO_PASSWORDLESS, *argv)


def authorized_line(public: str, sources: list[str], command: tuple[str, ...], comment: str) -> str:
    """One authorized_keys line: only from ``sources``, only ``command``, no pty and no forwarding."""
    if not sources:
        raise ValueError("a relay key needs at least one source address")
    for source in sources:
        if not source or any(c in source for c in ' ",\\\n'):
            raise ValueError(f"{source!r} is not an address pattern")
    if any(c.isspace() for c in comment):
        raise ValueError("the key comment must be one word")
    quoted = shlex.join(command).replace("\\", "\\\\").replace('"', '\\"')
    options = [f'from="{",".join(sources)}"', f'command="{quoted}"', *KEY_OPTIONS]
    return f"{','.join(options)} {public.strip()} {comment}"


def known_hosts_line(host: Host, keytype: str, blob: str) -> str:
    return f"{known_hosts_name(host)} {keytype} {blob}"


def install_argv(user: str, line: str, stale: str) -> tuple[str, ...]:
    return ("sh", "-c", INSTALL_KEY, "sh", user, line, stale)


def remove_argv(user: str, mark: str) -> tuple[str, ...]:
    return ("sh", "-c", REMOVE_KEY, "sh", user, mark)


def pull_argv(seed: Host, known_hosts: str, image: str) -> tuple[str, ...]:
    return ("sh", "-c", PULL, "sh", f"{seed.user}@{seed.address}", str(seed.port), known_hosts, image)


def source_addresses(hosts: list[Host], resolve=socket.getaddrinfo) -> list[str]:  # noqa: ANN001
    """The addresses the other hosts connect from, as the seed will see them (IPs; names resolved)."""
    out: list[str] = []
    for h in hosts:
        try:
            ipaddress.ip_address(h.address)
            found = [h.address]
        except ValueError:
            try:
                found = [info[4][0] for info in resolve(h.address, None, type=socket.SOCK_STREAM)]
            except OSError:
                found = []
        out += [a for a in found if a not in out]
    return out


@dataclass
class _Seed:
    host: Host
    remote: Remote
    ready: threading.Event = field(default_factory=threading.Event)
    failed: bool = False  # the push from this computer failed: another host becomes the seed
    key: OneTimeKey | None = None
    known_hosts: str = ""
    why_not: str = ""  # why other hosts cannot pull from it ("" when they can)


class Relay:
    """One provision run's image relay: elects seeds, lets the other hosts pull, cleans up.

    Thread-safe: every host's worker calls :meth:`deliver` for its PushImage steps.
    """

    def __init__(self, session: Session, local_ids: dict[str, str], hosts: tuple[Host, ...]):
        self.session = session
        self.local_ids = local_ids
        self.hosts = hosts
        self.fleet = session.inventory.name
        self.lock = threading.Lock()
        self.seeds: dict[str, _Seed] = {}
        self.relayed: list[tuple[str, str, str]] = []  # (image, seed, receiver)
        self.fallbacks: list[tuple[str, str, str]] = []  # (image, receiver, why)
        self._kept: list[Remote] = []

    # --- connections --------------------------------------------------------

    @contextmanager
    def connect(self, host: Host) -> Iterator[Remote]:
        """The host's one connection; a seed's stays open until :meth:`close` has removed its key."""
        remote = self.session.connect(host)
        try:
            yield remote
        finally:
            with self.lock:
                keep = remote in self._kept
            if not keep:
                remote.close()

    # --- delivering an image ------------------------------------------------

    def deliver(self, step: PushImage, host: Host, remote: Remote) -> None:
        """Get ``step.image`` onto the host: from a seed when one serves it, else from this computer."""
        image = step.image
        deadline = time.monotonic() + step.timeout
        while True:
            with self.lock:
                seed = self.seeds.get(image)
                if seed is None or seed.failed:
                    seed = self.seeds[image] = _Seed(host, remote)
                    mine = True
                else:
                    mine = False
            if mine:
                return self._seed(seed, step)
            self._wait(seed, deadline, step.title)
            if not seed.failed:
                break
        if seed.why_not or seed.key is None:
            return self._direct(step, host, remote, f"no relay from {seed.host.id} ({seed.why_not or 'no key'})")
        self.session.progress(f"  {host.id}: get image {image} from {seed.host.id} (host to host)")
        try:
            result = remote.run(pull_argv(seed.host, seed.known_hosts, image),
                                stdin=seed.key.private, timeout=max(1, int(deadline - time.monotonic())),
                                title=f"get image {image} from {seed.host.id}")
        except Interrupted:
            raise
        except HostError as e:
            return self._direct(step, host, remote, f"relay from {seed.host.id} failed: {e}")
        got = result.stdout.strip().splitlines()[-1:] or [""]
        if got[0] != self.local_ids.get(image):
            return self._direct(step, host, remote, f"relay from {seed.host.id} gave image id {got[0] or 'none'}")
        with self.lock:
            self.relayed.append((image, seed.host.id, host.id))

    def _seed(self, seed: _Seed, step: PushImage) -> None:
        host, remote = seed.host, seed.remote
        self.session.progress(f"  {host.id}: {step.title}")
        try:
            remote.push_image(step.image, timeout=step.timeout, title=step.title)
        except BaseException:
            seed.failed = True
            seed.ready.set()
            raise
        try:
            seed.why_not = self._open(seed, step.image)
        except Exception as e:  # noqa: BLE001 - the others then get the image from this computer
            seed.why_not = f"internal error: {type(e).__name__}: {e}"
        finally:
            seed.ready.set()
        if seed.why_not and len(self.hosts) > 1:
            self.session.progress(f"  {host.id}: other hosts cannot get {step.image} from here: {seed.why_not}")

    def _open(self, seed: _Seed, image: str) -> str:
        """Let the other hosts read the image from the seed; '' when they can, else why not."""
        host, remote = seed.host, seed.remote
        if host.user != "root" and remote.sudo_password is not None:
            return "its sudo needs a password, which a forced command cannot give"
        others = source_addresses([h for h in self.hosts if h.id != host.id])
        if not others:
            return "no other host to serve"
        pinned = self.session.keys.pinned.get(known_hosts_name(host))
        if pinned:
            keytype, blob = pinned.split(" ", 1)
        else:
            server_key = remote.conn.client.get_transport().get_remote_server_key()
            keytype, blob = server_key.get_name(), server_key.get_base64()
        key = new_key()
        line = authorized_line(key.public, others, forced_command(image, host.user),
                               marker(self.fleet, secrets.token_hex(8)))
        with self.lock:
            self._kept.append(remote)  # from here on its key must be removed, over this connection
        try:
            remote.run(install_argv(host.user, line, marker(self.fleet)), timeout=self.session.inventory.timeouts.command,
                       title="accept a one-time key for the image relay")
        except HostError as e:
            return f"could not add the one-time key: {e}"
        seed.key, seed.known_hosts = key, known_hosts_line(host, keytype, blob)
        return ""

    def _wait(self, seed: _Seed, deadline: float, title: str) -> None:
        while not seed.ready.wait(0.2):
            STOP.check(title)
            if time.monotonic() > deadline:
                raise HostError(f"{title}: gave up waiting for {seed.host.id} to receive it first")

    def _direct(self, step: PushImage, host: Host, remote: Remote, why: str) -> None:
        self.session.progress(f"  {host.id}: {why}; sending {step.image} from this computer instead")
        with self.lock:
            self.fallbacks.append((step.image, host.id, why))
        remote.push_image(step.image, timeout=step.timeout, title=step.title)

    def stats(self) -> dict:
        with self.lock:
            return {"seeds": {image: s.host.id for image, s in self.seeds.items() if not s.failed},
                    "relayed": [list(r) for r in self.relayed], "fallbacks": [list(f) for f in self.fallbacks]}

    # --- cleaning up --------------------------------------------------------

    def close(self) -> list[str]:
        """Remove the one-time keys from every seed (also after failures); returns what could not be removed."""
        with self.lock:
            kept, self._kept = self._kept, []
        left = []
        for remote in dict.fromkeys(kept):
            host = remote.host
            try:
                try:
                    remote.run(remove_argv(host.user, marker(self.fleet)), timeout=60,
                               title="remove the image relay's one-time key")
                except HostError:  # its connection may have broken meanwhile: one more try on a new one
                    with self.session.connect(host) as again:
                        again.run(remove_argv(host.user, marker(self.fleet)), timeout=60,
                                  title="remove the image relay's one-time key")
            except HostError as e:
                left.append(f"{host.id}: {e}")
                self.session.progress(f"WARNING: {host.id}: the image relay's one-time key could not be removed "
                                      f"({e}); remove the line marked {marker(self.fleet)} from "
                                      f"~{host.user}/.ssh/authorized_keys")
            finally:
                remote.close()
        return left
