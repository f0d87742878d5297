"""What runs on the hosts of a relay, and the one-time key that lets one host read from another: pure.

The receiver scripts (:data:`RECEIVE` for images, :data:`RECEIVE_FILES` for
course data) write the incoming bytes to a relay file while the next host may
already be reading it through :data:`FOLLOW`, the only command a one-time key
may run. The key lines, argv and the chain's small decisions are plain
functions of plain data, unit-tested as strings; fleet/relay.py is the
stateful part that drives them over the run's SSH connections (and says why
the relay works the way it does).
"""
from __future__ import annotations

import hashlib
import ipaddress
import shlex
import socket
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet import filesync
from fleet.hostkeys import known_hosts_name
from fleet.inventory import Host
from fleet.ssh import SUDO_PASSWORDLESS
from fleet.steps import SendFiles

MARK = "fleet-relay"  # comment of every key line fleet adds; with the fleet's name it finds stale ones
KEY_OPTIONS = ("no-agent-forwarding", "no-port-forwarding", "no-pty", "no-user-rc", "no-X11-forwarding")
DOCKER_WAIT = 900  # seconds a receiver waits for the host's Docker (it may still be installing)

# $1 login user, $2 the authorized_keys line, $3 the fleet's marker prefix, $4 this run's marker prefix: lines
# of the fleet left by an interrupted run are removed first, this run's own lines (a host relaying an image
# and the course data has one line, and one key, for each) stay. Creates ~/.ssh and the file (owned by the
# user) when missing.
INSTALL_KEY = r"""
set -eu
user=$1 line=$2 mark=$3 keep=$4
home=$(getent passwd "$user" | cut -d: -f6)
group=$(id -gn "$user")
[ -n "$home" ] || { echo "no home directory for $user" >&2; exit 1; }
[ -d "$home/.ssh" ] || install -d -m 700 -o "$user" -g "$group" "$home/.ssh"
f=$home/.ssh/authorized_keys
if [ ! -e "$f" ]; then install -m 600 -o "$user" -g "$group" /dev/null "$f"; fi
if grep -F -- "$mark" "$f" | grep -qvF -- "$keep"; then
  tmp=$(mktemp "$f.XXXXXX")
  awk -v m="$mark" -v k="$keep" 'index($0, m) == 0 || index($0, k) > 0' "$f" > "$tmp" || true
  chown --reference="$f" "$tmp" && chmod --reference="$f" "$tmp"
  mv -f "$tmp" "$f"
fi
if [ -s "$f" ] && [ -n "$(tail -c 1 "$f")" ]; then echo >> "$f"; fi
printf '%s\n' "$line" >> "$f"
"""

# $1 login user, $2 the marker, $3 the relay's folder. Removes every key line holding the marker (keeping
# the file's owner and mode), and the relay's files.
REMOVE_KEY = r"""
set -eu
user=$1 mark=$2 dir=$3
rm -rf -- "$dir"
home=$(getent passwd "$user" | cut -d: -f6)
f=$home/.ssh/authorized_keys
[ -f "$f" ] || exit 0
grep -qF -- "$mark" "$f" || exit 0
tmp=$(mktemp "$f.XXXXXX")
grep -vF -- "$mark" "$f" > "$tmp" || true
chown --reference="$f" "$tmp" && chmod --reference="$f" "$tmp"
mv -f "$tmp" "$f"
"""

# The part of a receiver that gets the bytes into $f (from stdin, or from $src over SSH with the one-time key
# on stdin) and notes the writer's PID beside it; $src $port $known $f set, $d a private folder.
FETCH = r"""
exec 3<&0
umask 077
d=$(mktemp -d) || exit 1
w= p=
trap 'kill $p 2>/dev/null; [ -n "$w" ] && kill $w 2>/dev/null; rm -rf "$d"' EXIT
trap 'exit 130' INT TERM HUP
mkdir -p -m 700 "${f%/*}"
rm -f "$f" "$f.pid" "$f.end"
: > "$f"
if [ "$src" = - ]; then
  { cat <&3; echo $? > "$f.end"; } >> "$f" &
  w=$!
else
  cat <&3 > "$d/key"
  printf '%s\n' "$known" > "$d/known_hosts"
  command -v ssh >/dev/null 2>&1 || { echo "no ssh client on this host" >&2; exit 1; }
  { ssh -T -i "$d/key" -p "$port" -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes \
      -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$d/known_hosts" -o GlobalKnownHostsFile=/dev/null \
      -o ConnectTimeout=15 -o ServerAliveInterval=10 -o ServerAliveCountMax=3 -o LogLevel=ERROR \
      "$src" relay </dev/null; echo $? > "$f.end"; } >> "$f" &
  w=$!
fi
echo "$w" > "$f.pid"
"""

# $1 "-" (the image arrives on stdin) or user@host to read it from, $2 that host's SSH port, $3 its
# known_hosts line, $4 the file to write (and serve to the next host), $5 the image, $6 seconds to wait
# for Docker. stdin: the image, or the private key of the one-time pair. Prints "received BYTES" on
# stderr every 2 s while bytes arrive, and the image id the host has at the end on stdout.
RECEIVE = r"""
set -u
src=$1 port=$2 known=$3 f=$4 image=$5 wait=$6""" + FETCH + (
    r"""{ while kill -0 "$w" 2>/dev/null; do echo "received $(stat -c %s "$f")" >&2; sleep 2; done; } &
p=$!
i=0
until timeout 10 docker info >/dev/null 2>&1; do
  i=$((i + 1))
  [ "$i" -ge "$wait" ] && { echo "Docker did not answer within ${wait}s" >&2; exit 1; }
  [ "$i" = 1 ] && echo "waiting up to ${wait}s for Docker to answer before loading the image" >&2
  sleep 1
done
tail -c +1 -f -s 0.2 --pid="$w" "$f" | docker load >/dev/null 2>"$d/load" \
  || { echo "docker load failed: $(tail -n 1 "$d/load")" >&2; exit 1; }
wait "$w"
w=
kill $p 2>/dev/null
echo "received $(stat -c %s "$f")" >&2
rc=$(cat "$f.end" 2>/dev/null)
[ "$rc" = 0 ] || { echo "reading the image from $src failed (exit ${rc:-unknown})" >&2; exit 1; }
docker image inspect --format '{{.Id}}' "$image"
""")

# Course data (fleet/filesync.py) relayed like an image: $1-$4 as for RECEIVE, $5 the host's sync script
# (filesync.SYNC), then its arguments. stdin: the manifest and the tar stream, or the one-time private key. The
# sync reads the file as it grows, so the next host can read it while this one still receives it.
RECEIVE_FILES = r"""
set -u
src=$1 port=$2 known=$3 f=$4 sync=$5
shift 5""" + FETCH + r"""tail -c +1 -f -s 0.2 --pid="$w" "$f" | sh -c "$sync" sh "$@" || exit 1
wait "$w"
w=
rc=$(cat "$f.end" 2>/dev/null)
[ "$rc" = 0 ] || { echo "reading the files from $src failed (exit ${rc:-unknown})" >&2; exit 1; }
"""

# $1 the relay file. The forced command of a one-time key: the file as it grows, until its writer ends.
FOLLOW = (
    'f=$1; i=0; while [ ! -s "$f.pid" ]; do i=$((i + 1)); [ "$i" -gt 600 ] && exit 1; sleep 0.1; done; '
    '[ -e "$f.end" ] && exec cat "$f"; exec tail -c +1 -f -s 0.2 --pid="$(cat "$f.pid")" "$f"'
)


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


def folder(fleet: str) -> str:
    """Where a host keeps the relay's files during a run (removed at its end)."""
    return f"/var/tmp/fleet-relay-{fleet}"


def relay_file(fleet: str, image: str) -> str:
    return f"{folder(fleet)}/{hashlib.sha256(image.encode()).hexdigest()[:16]}.tar"


def follow_command(path: str, user: str) -> tuple[str, ...]:
    """The only command a one-time key may run: stream the relay file as it grows."""
    argv = ("sh", "-c", FOLLOW, "sh", path)
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


def install_argv(user: str, line: str, stale: str, keep: str) -> tuple[str, ...]:
    """Add ``line``; remove the lines holding ``stale`` (an earlier run's) unless they hold ``keep`` (this run's)."""
    if not keep.startswith(stale) or keep == stale:
        raise ValueError("keep must be a longer marker within stale")
    return ("sh", "-c", INSTALL_KEY, "sh", user, line, stale, keep)


def remove_argv(user: str, mark: str, fleet: str) -> tuple[str, ...]:
    return ("sh", "-c", REMOVE_KEY, "sh", user, mark, folder(fleet))


def receive_argv(path: str, image: str, source: Host | None = None, known_hosts: str = "",
                 docker_wait: int = DOCKER_WAIT) -> tuple[str, ...]:
    """The receiver; ``source`` None: the image comes on stdin (from this computer)."""
    where = f"{source.user}@{source.address}" if source else "-"
    port = str(source.port) if source else ""
    return ("sh", "-c", RECEIVE, "sh", where, port, known_hosts, path, image, str(docker_wait))


def receive_files_argv(path: str, step: SendFiles, source: Host | None = None, known_hosts: str = "") -> tuple[str, ...]:
    """The receiver of course data; ``source`` None: the manifest and tar stream come on stdin (from this computer)."""
    where = f"{source.user}@{source.address}" if source else "-"
    port = str(source.port) if source else ""
    sync = filesync.argv(step)  # ("sh", "-c", SYNC, "sh", *its arguments)
    return ("sh", "-c", RECEIVE_FILES, "sh", where, port, known_hosts, path, sync[2], *sync[4:])


def files_key(step: SendFiles) -> str:
    """What the hosts that receive the very same stream share: the same files sent and removed for the same manifest."""
    digest = hashlib.sha256(step.manifest + repr((step.folder, step.send, step.remove)).encode()).hexdigest()
    return f"course data {step.source} {digest[:16]}"


def source_addresses(hosts: list[Host], resolve=socket.getaddrinfo) -> list[str]:  # noqa: ANN001
    """The addresses the other hosts connect from, as a relaying host will see them (IPs; names resolved)."""
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


def eta(total: int, slowest: int, rate: float) -> str:
    """'about 12 s left' for the slowest host, or '' when it cannot be told yet."""
    if rate <= 0 or total <= 0 or slowest >= total:
        return ""
    return f", about {max(1, round((total - slowest) / rate))} s left"
