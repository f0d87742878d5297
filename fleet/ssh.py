"""The SSH edge: one reused connection per host, verified host keys, timeouts, sudo.

This is the one place where argv becomes a command string (``shlex.join``).
Fabric's Connection opens the session (it reads ~/.ssh/config, keys, agent,
gateways); commands run on a plain paramiko channel so that stdin, timeouts
and streaming an image are under our control.

Host keys: Fabric accepts any key (AutoAddPolicy). We load known_hosts and
the keys pinned in the fleet's state instead; a host seen for the first time
has its key pinned (trust on first use), and a key that differs from either
stops that host.
"""
from __future__ import annotations

import select
import shlex
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko
from fabric import Config, Connection

from fleet.errors import HostError
from fleet.inventory import Host
from fleet.steps import PushImage, Run, Step, Upload

SUDO_PASSWORDLESS = ("sudo", "-n", "--")
SUDO_WITH_PASSWORD = ("sudo", "-S", "-k", "-p", "", "--")  # password read from stdin, never argv
CHUNK = 1 << 16


@dataclass
class Result:
    exit_status: int
    stdout: str
    stderr: str


class HostKeys:
    """Host keys pinned in the state, shared by all connections of a run (thread-safe)."""

    def __init__(self, pinned: dict[str, str] | None = None, *, accept_new: bool = False):
        self.pinned = dict(pinned or {})
        self.accept_new = accept_new  # an explicit flag: trust a changed key
        self.lock = threading.Lock()

    def install(self, client: paramiko.SSHClient, name: str) -> None:
        """Make ``client`` check the host's key against known_hosts and the pins."""
        if self.accept_new:  # the teacher said the server was rebuilt: pin whatever it shows now
            client.set_missing_host_key_policy(_Pin(self))
            return
        try:
            client.load_system_host_keys()
        except (OSError, paramiko.SSHException):
            pass
        with self.lock:
            line = self.pinned.get(name)
        if line:
            keytype, blob = line.split(" ", 1)
            client.get_host_keys().add(name, keytype, paramiko.PKey.from_type_string(keytype, _b64(blob)))
        client.set_missing_host_key_policy(_Pin(self))

    def pin(self, name: str, key: paramiko.PKey) -> None:
        with self.lock:
            self.pinned[name] = f"{key.get_name()} {key.get_base64()}"


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


class _Pin(paramiko.MissingHostKeyPolicy):
    def __init__(self, keys: HostKeys):
        self.keys = keys

    def missing_host_key(self, client, hostname, key):  # noqa: ANN001 (paramiko's signature)
        self.keys.pin(hostname, key)


def known_hosts_name(host: Host) -> str:
    return host.address if host.port == 22 else f"[{host.address}]:{host.port}"


class Remote:
    """A connection to one host; every method has a timeout and raises HostError with one line."""

    def __init__(self, host: Host, keys: HostKeys, *, connect_timeout: int = 15, sudo_password: str | None = None):
        self.host = host
        self.sudo_password = sudo_password
        self.round_trips = 0
        kwargs: dict = {"banner_timeout": connect_timeout, "auth_timeout": connect_timeout}
        if host.key:
            kwargs["key_filename"] = [host.key]
        self.conn = Connection(
            host.address, user=host.user, port=host.port, connect_timeout=connect_timeout,
            connect_kwargs=kwargs, config=Config(overrides={"load_ssh_configs": True}),
        )
        keys.install(self.conn.client, known_hosts_name(host))
        self._open()
        if sudo_password is not None and host.user != "root":
            # With passwordless sudo, sudo -S would not read the password and it
            # would reach the command's stdin instead: use the password only when needed.
            if self._exec(shlex.join([*SUDO_PASSWORDLESS, "true"]), b"", [], connect_timeout).exit_status == 0:
                self.sudo_password = None

    def _open(self) -> None:
        h = self.host
        try:
            self.conn.open()
        except paramiko.BadHostKeyException as e:
            raise HostError(
                f"the SSH host key of {h.id} has CHANGED (now {e.key.get_name()} {e.key.fingerprint}); "
                "if the server was rebuilt, re-run with --accept-new-host-key, otherwise do not trust it"
            ) from None
        except paramiko.AuthenticationException:
            hint = "" if h.key else "; set ssh.key in the inventory"
            raise HostError(f"SSH login as {h.user!r} was refused (no key accepted{hint})") from None
        except TimeoutError:
            raise HostError(f"no answer from {h.address} port {h.port} within the connect timeout") from None
        except paramiko.ssh_exception.NoValidConnectionsError as e:
            reason = next(iter(e.errors.values()), e)
            reason = getattr(reason, "strerror", None) or reason
            raise HostError(f"cannot connect to {h.address} port {h.port}: {reason}") from None
        except socket.gaierror as e:
            raise HostError(f"cannot resolve host name {h.address}: {e.strerror}") from None
        except paramiko.SSHException as e:
            raise HostError(f"SSH handshake with {h.address} port {h.port} failed: {e}") from None
        except OSError as e:
            raise HostError(f"cannot connect to {h.address} port {h.port}: {e.strerror or e}") from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- running commands ---------------------------------------------------

    def _wrap(self, argv: tuple[str, ...] | list[str]) -> tuple[str, bytes]:
        """The command line as root, and what must precede stdin (the sudo password)."""
        if self.host.user == "root":
            return shlex.join(argv), b""
        if self.sudo_password is not None:
            return shlex.join([*SUDO_WITH_PASSWORD, *argv]), self.sudo_password.encode() + b"\n"
        return shlex.join([*SUDO_PASSWORDLESS, *argv]), b""

    def run(self, argv: tuple[str, ...] | list[str], *, timeout: int, stdin=None, check: bool = True) -> Result:  # noqa: ANN001
        """Run argv as root; ``stdin`` is bytes or an iterable of byte chunks."""
        command, preamble = self._wrap(argv)
        chunks = [stdin] if isinstance(stdin, (bytes, bytearray)) else (stdin or [])
        result = self._exec(command, preamble, chunks, timeout)
        if check and result.exit_status != 0:
            raise HostError(self._failure(argv, result))
        return result

    def _failure(self, argv: tuple[str, ...] | list[str], result: Result) -> str:
        err = (result.stderr.strip() or result.stdout.strip()).splitlines()
        last = err[-1] if err else f"exit status {result.exit_status}"
        if "a password is required" in last or "a terminal is required" in last:
            return (f"user {self.host.user!r} needs a sudo password: run with --prompt-for-sudo-password, "
                    "or allow passwordless sudo")
        if "is not in the sudoers file" in last or "may not run sudo" in last:
            return f"user {self.host.user!r} may not use sudo on this host; log in as root or a sudo user"
        return f"{argv[0]} {argv[1] if len(argv) > 1 and not argv[1].startswith('-') else ''}".strip() + f" failed: {last}"

    def _exec(self, command: str, preamble: bytes, chunks, timeout: int) -> Result:  # noqa: ANN001
        self.round_trips += 1
        transport = self.conn.client.get_transport()
        if transport is None or not transport.is_active():
            raise HostError(f"the SSH connection to {self.host.id} was lost")
        deadline = time.monotonic() + timeout
        out, err = bytearray(), bytearray()
        try:
            chan = transport.open_session(timeout=min(timeout, 30))
            chan.exec_command(command)
            if preamble:
                chan.sendall(preamble)
            for chunk in chunks:
                view = memoryview(chunk)
                while view and not chan.exit_status_ready():
                    if time.monotonic() > deadline:
                        raise TimeoutError
                    if chan.send_ready():
                        view = view[chan.send(view[:CHUNK]):]
                    else:  # the remote side is not reading: keep its output flowing meanwhile
                        select.select([chan], [], [], 0.05)
                    _drain(chan, out, err)
            chan.shutdown_write()
            while not chan.exit_status_ready() or chan.recv_ready() or chan.recv_stderr_ready():
                if time.monotonic() > deadline:
                    raise TimeoutError
                select.select([chan], [], [], 0.5)
                _drain(chan, out, err)
            status = chan.recv_exit_status()
            chan.close()
        except TimeoutError:
            chan.close()
            raise HostError(f"timed out after {timeout} s: {command[:200]}") from None
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise HostError(f"the SSH connection to {self.host.id} broke: {e}") from None
        return Result(status, out.decode(errors="replace"), err.decode(errors="replace"))

    # --- steps --------------------------------------------------------------

    def apply(self, step: Step) -> Result:
        """Carry out one Step."""
        if isinstance(step, Run):
            return self.run(step.argv, timeout=step.timeout)
        if isinstance(step, Upload):
            return self.upload(step.path, step.content, step.mode, timeout=step.timeout)
        if isinstance(step, PushImage):
            return self.push_image(step.image, timeout=step.timeout)
        raise TypeError(step)

    def upload(self, path: str, content: bytes, mode: int, *, timeout: int = 60) -> Result:
        """Write a file as root through stdin: created under umask 077, then renamed into place."""
        return self.run(("sh", "-c", WRITE_FILE, "sh", path, f"{mode:o}"), timeout=timeout, stdin=content)

    def push_image(self, image: str, *, timeout: int) -> Result:
        """docker save on this computer, streamed into docker load on the host."""
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            result = self.run(("docker", "load"), timeout=timeout, stdin=iter(lambda: save.stdout.read(CHUNK), b""))
        finally:
            save.stdout.close()
            try:
                rc = save.wait(timeout=30)
            except subprocess.TimeoutExpired:
                save.kill()
                rc = -9
        if rc != 0:
            raise HostError(f"docker save {image} failed on this computer: {save.stderr.read().decode().strip()}")
        return result


WRITE_FILE = 'umask 077 && mkdir -p "$(dirname "$1")" && cat > "$1.tmp" && chmod "$2" "$1.tmp" && mv -f "$1.tmp" "$1"'


def _drain(chan: paramiko.Channel, out: bytearray, err: bytearray) -> None:
    while chan.recv_ready():
        out += chan.recv(CHUNK)
    while chan.recv_stderr_ready():
        err += chan.recv_stderr(CHUNK)


def local_image_id(image: str) -> str:
    """The controller's id of an image it will push; a clear error if it has none."""
    try:
        out = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", image],
                             capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise HostError("`push: true` needs Docker on this computer, and the docker command was not found") from None
    if out.returncode != 0:
        raise HostError(f"image {image} is not on this computer (push: true sends the local copy); build or pull it first")
    return out.stdout.strip()


def default_known_hosts() -> Path:
    return Path.home() / ".ssh" / "known_hosts"
