"""The SSH edge: one reused connection per host, verified host keys, timeouts, sudo.

This is the one place where argv becomes a command string (``shlex.join``).
Fabric's Connection opens the session (it reads ~/.ssh/config, keys, agent,
gateways); commands run on a plain paramiko channel so that stdin, timeouts
and streaming an image are under our control.

Host keys: Fabric accepts any key (AutoAddPolicy). We load known_hosts and
the keys pinned in the fleet's state instead; a host seen for the first time
has its key pinned (trust on first use), and a key that differs from either
stops that host.

Every wait is bounded:

- connecting (TCP, SSH handshake and login together) by the inventory's
  ``timeouts.connect``: a watchdog closes the socket of a server that accepts
  the connection but never finishes the handshake;
- every command by its own timeout;
- a host that stops answering in the middle of a command (network cut,
  server stopped) by :data:`KEEPALIVE` seconds of silence plus one SSH
  keepalive that must be answered within ``timeouts.connect`` — TCP alone
  would wait a quarter of an hour;
- a user's interrupt (``fleet.runner.STOP``): no new command starts, and an
  abort closes the connection under a running one.
"""
from __future__ import annotations

import logging
import os
import re
import select
import shlex
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import paramiko
from fabric import Config, Connection

from fleet import filesync
from fleet.batch import batch_command
from fleet.commands import images
from fleet.errors import HostError
from fleet.hostkeys import HostKeys, known_hosts_name
from fleet.inventory import Host
from fleet.runner import STOP, Interrupted
from fleet.steps import PushImage, Run, SendFiles, Step, Upload

# paramiko logs socket errors itself; without a handler Python would print them
# as stray lines. Errors reach the user once, as the host's one line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

SUDO_PASSWORDLESS = ("sudo", "-n", "--")
SUDO_WITH_PASSWORD = ("sudo", "-S", "-k", "-p", "", "--")  # password read from stdin, never argv
CHUNK = 1 << 16
KEEPALIVE = 10  # seconds without a sign of life from the host before asking it whether it is still there
OUTPUT_GRACE = 5  # seconds to wait for the end of a command's output after its exit status


@dataclass
class _Call:
    """One command's own watch: when its channel last showed life, what it already passed on.

    Per call, so that two commands may run at once over one connection (an
    image arriving while Docker is installed)."""

    title: str
    heard: float
    on_line: Callable[[str], None] | None = None  # every line the command writes to stderr
    cancel: threading.Event | None = None  # set by another thread: stop this command
    err_seen: int = 0
    said: set = field(default_factory=set)


@dataclass
class Result:
    exit_status: int
    stdout: str
    stderr: str
    raw: bytes = b""  # stdout as bytes, for binary output (a tar stream)


def _shut(sock: socket.socket | None) -> None:
    """Make every blocked read and write on ``sock`` return at once."""
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Remote:
    """A connection to one host; every method has a timeout and raises HostError with one line."""

    def __init__(self, host: Host, keys: HostKeys, *, connect_timeout: int = 15, sudo_password: str | None = None,
                 progress: Callable[[str], None] | None = None):
        self.host = host
        self.sudo_password = sudo_password
        self.connect_timeout = connect_timeout
        self.progress = progress
        self.round_trips = 0
        self.pushed_bytes = 0  # image bytes sent from this computer (push_image)
        self.data_bytes = 0  # course data sent from this computer (SendFiles: the manifest and the tar stream)
        self._sock: socket.socket | None = None
        self.peer: str | None = None  # the IP address the connection reached (None through a ProxyJump/ProxyCommand)
        self._lost = 0.0  # seconds without an answer when a watch gave the connection up
        self._count = threading.Lock()
        kwargs: dict = {"banner_timeout": connect_timeout, "auth_timeout": connect_timeout}
        if host.key:
            kwargs["key_filename"] = [host.key]
        self.conn = Connection(
            host.address, user=host.user, port=host.port, connect_timeout=connect_timeout,
            connect_kwargs=kwargs, config=Config(overrides={"load_ssh_configs": True}),
        )
        keys.install(self.conn.client, known_hosts_name(host))
        self._stop_key = STOP.register(self._abort)
        try:
            STOP.check(f"connecting to {host.id}")
            self._open()
            if sudo_password is not None and host.user != "root":
                self._check_sudo_password()
        except BaseException:
            self.close()
            raise

    def _abort(self) -> None:
        """Called from another thread on a user's abort: break this connection now."""
        _shut(self._sock)
        transport = self.conn.client.get_transport()
        if transport is not None:
            transport.close()

    def _check_sudo_password(self) -> None:
        # With passwordless sudo, sudo -S would not read the password and it
        # would reach the command's stdin instead: use the password only when
        # needed, and make sure it works before any command's stdin follows it
        # (a wrong one would make sudo read that stdin as more attempts).
        t = self.connect_timeout
        check = _Call("check sudo", time.monotonic())
        if self._exec(shlex.join([*SUDO_PASSWORDLESS, "true"]), b"", [], t, check).exit_status == 0:
            self.sudo_password = None
            return
        result = self._exec(shlex.join([*SUDO_WITH_PASSWORD, "true"]), self.sudo_password.encode() + b"\n", [], t,
                            _Call("check the sudo password", time.monotonic()))
        if result.exit_status != 0:
            raise HostError(self._failure(("sudo",), result, "sudo"))

    def _open(self) -> None:
        """TCP, SSH handshake and login, all within the connect timeout."""
        h, c = self.host, self.conn
        limit = self.connect_timeout
        deadline = time.monotonic() + limit
        stalled = threading.Event()
        watchdog = None
        try:
            if not c.gateway:  # a ProxyJump/ProxyCommand from ~/.ssh/config makes its own socket
                self._sock = self._tcp(c.host, c.port, limit)
                c.connect_kwargs["sock"] = self._sock

                def fire() -> None:
                    stalled.set()
                    _shut(self._sock)

                watchdog = threading.Timer(max(0.1, deadline - time.monotonic()), fire)
                watchdog.daemon = True
                watchdog.start()
            c.open()
            if self._sock is not None:
                self.peer = self._sock.getpeername()[0]
        except HostError:
            raise
        except paramiko.BadHostKeyException as e:
            raise HostError(
                f"the SSH host key of {h.id} has CHANGED (now {e.key.get_name()} {e.key.fingerprint}); "
                "if the server was rebuilt, re-run with --accept-new-host-key, otherwise do not trust it"
            ) from None
        except paramiko.AuthenticationException:
            hint = "" if h.key else "; set ssh.key in the inventory"
            raise HostError(f"SSH login as {h.user!r} was refused (no key accepted{hint})") from None
        except Exception as e:  # noqa: BLE001 - mapped to one line below
            if STOP.aborted.is_set():
                raise Interrupted(f"interrupted ({STOP.signal}) while connecting") from None
            if stalled.is_set():
                raise HostError(
                    f"{h.address} port {h.port} accepts connections but SSH did not finish its handshake and "
                    f"login within {limit} s (timeouts.connect); is it an SSH server, and is it overloaded?"
                ) from None
            if isinstance(e, TimeoutError):
                raise HostError(f"no answer from {h.address} port {h.port} within {limit} s (timeouts.connect)") from None
            if isinstance(e, paramiko.ssh_exception.NoValidConnectionsError):
                reason = next(iter(e.errors.values()), e)
                reason = getattr(reason, "strerror", None) or reason
                raise HostError(f"cannot connect to {h.address} port {h.port}: {reason}") from None
            if isinstance(e, socket.gaierror):
                raise HostError(f"cannot resolve host name {h.address}: {e.strerror}") from None
            if isinstance(e, paramiko.SSHException | EOFError):
                raise HostError(f"SSH handshake with {h.address} port {h.port} failed: {str(e) or type(e).__name__}") from None
            if isinstance(e, OSError):
                raise HostError(f"cannot connect to {h.address} port {h.port}: {e.strerror or e}") from None
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()

    def _tcp(self, address: str, port: int, limit: float) -> socket.socket:
        h = self.host
        try:
            return socket.create_connection((address, port), timeout=limit)
        except socket.gaierror as e:
            raise HostError(f"cannot resolve host name {address}: {e.strerror}") from None
        except TimeoutError:
            raise HostError(
                f"no answer from {address} port {port} within {limit} s (timeouts.connect): the host is down, "
                "or a firewall drops the connection"
            ) from None
        except OSError as e:
            if STOP.aborted.is_set():
                raise Interrupted(f"interrupted ({STOP.signal}) while connecting") from None
            raise HostError(f"cannot connect to {h.address} port {port}: {e.strerror or e}") from None

    @property
    def hostname(self) -> str:
        """The host name the SSH client used: the HostName ~/.ssh/config gives the inventory's address, or that address."""
        return self.conn.host

    def close(self) -> None:
        STOP.unregister(self._stop_key)
        self.conn.close()
        _shut(self._sock)

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

    def run(self, argv: tuple[str, ...] | list[str], *, timeout: int, stdin=None, check: bool = True,  # noqa: ANN001
            title: str | None = None, on_line: Callable[[str], None] | None = None,
            cancel: threading.Event | None = None) -> Result:
        """Run argv as root; ``stdin`` is bytes or an iterable of byte chunks.

        ``on_line`` hears each line the command writes to stderr as it comes;
        ``cancel``, set from another thread, ends the command (HostError).
        Two threads may run commands at once: each has its own channel.
        """
        title = title or _short(argv)
        command, preamble = self._wrap(argv)
        chunks = [stdin] if isinstance(stdin, (bytes, bytearray)) else (stdin or [])
        result = self._exec(command, preamble, chunks, timeout, _Call(title, time.monotonic(), on_line, cancel))
        if check and result.exit_status != 0:
            raise HostError(self._failure(argv, result, title))
        return result

    def _failure(self, argv: tuple[str, ...] | list[str], result: Result, title: str | None = None) -> str:
        err = [line.strip() for line in (result.stderr.strip() or result.stdout.strip()).splitlines() if line.strip()]
        last = err[-1] if err else f"exit status {result.exit_status}"
        text = "\n".join(err[-5:])
        said = "\n".join(line for line in err[-5:] if line.startswith("sudo:"))  # sudo's own complaints
        user = self.host.user
        if "a password is required" in said or "a terminal is required" in said:
            return (f"user {user!r} needs a sudo password: run with --prompt-for-sudo-password, "
                    "or allow passwordless sudo (or log in as root)")
        if "is not in the sudoers file" in text or "may not run sudo" in text:
            return f"user {user!r} may not use sudo on this host; log in as root or a sudo user"
        if "incorrect password attempt" in said or "no password was provided" in said:
            return f"the sudo password given for user {user!r} was not accepted on this host"
        last = last.removeprefix("Error response from daemon: ")
        what = title or _short(argv)
        if "no space left on device" in text.lower():
            return f"the host's disk is full: {what} failed: {last}"
        return f"{what} failed: {last}"

    def _exec(self, command: str, preamble: bytes, chunks, timeout: int, call: _Call) -> Result:  # noqa: ANN001
        title = call.title
        STOP.check(title)
        with self._count:
            self.round_trips += 1
        transport = self.conn.client.get_transport()
        if transport is None or not transport.is_active():
            raise HostError(f"the SSH connection to {self.host.id} was lost")
        deadline = time.monotonic() + timeout
        out, err = bytearray(), bytearray()
        done = threading.Event()
        threading.Thread(target=self._watch, args=(transport, done, call), name="fleet-watch", daemon=True).start()
        chan = None
        try:
            chan = transport.open_session(timeout=min(timeout, 30))
            chan.exec_command(command)
            if preamble:
                chan.sendall(preamble)
            for chunk in chunks:  # an empty chunk means "nothing to send yet": keep time
                self._tick(deadline, call)
                view = memoryview(chunk)
                while view and not chan.exit_status_ready():
                    self._tick(deadline, call)
                    if chan.send_ready():
                        view = view[chan.send(view[:CHUNK]):]
                        call.heard = time.monotonic()  # the host took data: it is alive
                    else:  # the remote side is not reading: keep its output flowing meanwhile
                        select.select([chan], [], [], 0.05)
                    self._drain(chan, out, err, call)
            chan.shutdown_write()
            # sshd may send the exit status before the last of the output (it drains the command's pipes
            # after the command exited): done once the output ended too (EOF), or OUTPUT_GRACE s after the
            # exit status when a process left in the background keeps the output open
            exited = None
            while True:
                if exited is None and chan.exit_status_ready():
                    exited = time.monotonic()
                ended = exited is not None and (chan.eof_received or chan.closed
                                                or time.monotonic() - exited > OUTPUT_GRACE)
                if ended and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                self._tick(deadline, call)
                select.select([chan], [], [], 0.5 if exited is None else 0.05)
                self._drain(chan, out, err, call)
            status = chan.recv_exit_status()
        except TimeoutError:
            raise HostError(f"{title}: gave up after its timeout of {timeout} s "
                            "(it may still be running on the host)") from None
        except _Cancelled:
            raise HostError(f"{title}: stopped, since another step on this host failed") from None
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise self._gone(title, e) from None
        finally:
            done.set()
            if chan is not None:
                try:
                    chan.close()
                except Exception:  # noqa: BLE001 - the connection is already gone; the error above says why
                    pass
        if status == -1 and not transport.is_active():  # the channel was closed under us, not by the command
            raise self._gone(title)
        return Result(status, out.decode(errors="replace"), err.decode(errors="replace"), bytes(out))

    def _gone(self, title: str, cause: BaseException | None = None) -> HostError:
        """Why the connection ended under a command, as the error to raise."""
        if STOP.aborted.is_set():
            return Interrupted(f"interrupted ({STOP.signal}) during: {title}")
        if self._lost:
            return HostError(
                f"lost contact with {self.host.id}: no answer for {self._lost:.0f} s during: {title} "
                "(network down or server stopped?); run again once it is back"
            )
        detail = f" ({str(cause) or type(cause).__name__})" if cause is not None else ""
        return HostError(f"the SSH connection to {self.host.id} broke during: {title}{detail}")

    def _tick(self, deadline: float, call: _Call) -> None:
        """Between two reads or writes: stop when asked or when the watch gave up, and time out."""
        if STOP.aborted.is_set() or self._lost:
            raise self._gone(call.title)
        if call.cancel is not None and call.cancel.is_set():
            raise _Cancelled
        if time.monotonic() > deadline:
            raise TimeoutError

    def _watch(self, transport: paramiko.Transport, done: threading.Event, call: _Call) -> None:
        """Beside each command: after KEEPALIVE s without a sign of life, ask the host; close the
        connection if it does not answer, which ends whatever the command's thread is blocked in."""
        while not done.wait(0.5):
            if time.monotonic() - call.heard <= KEEPALIVE:
                continue
            if self._ping(transport, done):
                call.heard = time.monotonic()
                continue
            if not done.is_set():
                self._lost = time.monotonic() - call.heard
                transport.close()
            return

    def _ping(self, transport: paramiko.Transport, done: threading.Event) -> bool:
        """One SSH keepalive that the server must answer (OpenSSH's ServerAliveInterval does the same).

        On a slow uplink the keepalive may queue behind megabytes of an image
        being sent; as long as TCP still sees acknowledgements, keep waiting.
        """
        answered = threading.Event()

        def ask() -> None:
            try:
                transport.global_request("keepalive@openssh.com", wait=True)
            except Exception:  # noqa: BLE001 - a dead transport is the answer "no"
                return
            if transport.is_active():
                answered.set()

        threading.Thread(target=ask, name="fleet-keepalive", daemon=True).start()
        end = time.monotonic() + self.connect_timeout
        while not answered.wait(0.2):
            if done.is_set() or STOP.aborted.is_set():
                return True  # not ours to judge any more
            if time.monotonic() > end:
                if not self._acked_within(self.connect_timeout):
                    return False
                end = time.monotonic() + 1
        return True

    def _acked_within(self, seconds: float) -> bool:
        """Did TCP receive an acknowledgement from the host in the last ``seconds``? (Linux; else False.)"""
        if self._sock is None or not hasattr(socket, "TCP_INFO"):
            return False
        try:
            info = self._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
            return struct.unpack_from("I", info, 56)[0] < seconds * 1000  # tcpi_last_ack_recv, ms
        except (OSError, struct.error):
            return False

    def _drain(self, chan: paramiko.Channel, out: bytearray, err: bytearray, call: _Call) -> None:
        got = False
        while chan.recv_ready():
            out += chan.recv(CHUNK)
            got = True
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(CHUNK)
            got = True
        if got:
            call.heard = time.monotonic()
            self._lines(err, call)

    def _lines(self, err: bytearray, call: _Call) -> None:
        """Hand on each new stderr line; pass on those in which a remote wait says what it waits for
        ("waiting up to 300s for ...") as progress, once each."""
        while (end := err.find(b"\n", call.err_seen)) >= 0:
            line = err[call.err_seen:end].decode(errors="replace").strip()
            call.err_seen = end + 1
            if call.on_line:
                call.on_line(line)
            key = re.sub(r"\d+", "N", line)
            if self.progress and line.lower().startswith("waiting") and key not in call.said:
                call.said.add(key)
                self.progress(f"  {self.host.id}: {line[:300]}")

    # --- steps --------------------------------------------------------------

    def apply(self, step: Step) -> Result:
        """Carry out one Step."""
        if isinstance(step, Run):
            return self.run(step.argv, timeout=step.timeout, title=step.title)
        if isinstance(step, Upload):
            return self.upload(step.path, step.content, step.mode, timeout=step.timeout, title=step.title)
        if isinstance(step, PushImage):
            return self.push_image(step.image, timeout=step.timeout, title=step.title)
        if isinstance(step, SendFiles):
            return self.run(filesync.argv(step), timeout=step.timeout, stdin=self.count_data(filesync.chunks(step)),
                            title=step.title)
        raise TypeError(step)

    def count_data(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """``chunks`` as they go, counted as course data sent from this computer (data_bytes)."""
        for chunk in chunks:
            self.data_bytes += len(chunk)
            yield chunk

    def apply_batch(self, steps: list[Run | Upload]) -> Result:
        """Carry out several Runs and Uploads in one round trip, in order, stopping at the first that fails.

        The commands become one script here (each argv quoted with shlex.join,
        each bounded by ``timeout`` of its own); the uploads' contents follow
        each other on stdin, each read by its exact length, so no secret is
        ever in the script. A failure names its step as a lone command would.
        """
        if len(steps) == 1:
            return self.apply(steps[0])
        argv, stdin = batch_command(steps)
        result = self.run(argv, timeout=sum(s.timeout for s in steps), stdin=stdin, check=False, title=steps[0].title)
        if result.exit_status == 0:
            return result
        marker = next((line for line in result.stderr.splitlines() if line.startswith("fleet-batch-failed ")), "")
        if not marker:
            raise HostError(self._failure(("sh",), result, f"{steps[0].title} (and {len(steps) - 1} more)"))
        _, n, rc = marker.split()
        step = steps[int(n)]
        if rc == "124":
            raise HostError(f"{step.title}: gave up after its timeout of {step.timeout} s "
                            "(it may still be running on the host)")
        said = result.stderr.split(marker, 1)[1]
        raise HostError(self._failure(("sh",), Result(int(rc), "", said), step.title))

    def upload(self, path: str, content: bytes, mode: int, *, timeout: int = 60, title: str | None = None) -> Result:
        """Write a file as root through stdin: created under umask 077, then renamed into place."""
        return self.run(("sh", "-c", WRITE_FILE, "sh", path, f"{mode:o}"), timeout=timeout, stdin=content,
                        title=title or f"write {path}")

    def push_image(self, image: str, *, timeout: int, title: str | None = None,
                   into: tuple[str, ...] = images.load(), on_line: Callable[[str], None] | None = None,
                   cancel: threading.Event | None = None) -> Result:
        """docker save on this computer, streamed into ``into`` on the host (docker load, or the relay's receiver)."""
        STOP.check(title or f"send image {image}")
        # Its own session: a Ctrl-C in the terminal goes to fleet, which decides
        # whether the transfer may finish, not straight to docker save.
        save = subprocess.Popen(images.save(image), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)

        def chunks() -> Iterator[bytes]:
            fd = save.stdout.fileno()
            while True:  # never block for long on a slow docker save: the caller checks time and interrupts
                if not select.select([fd], [], [], 0.5)[0]:
                    yield b""
                    continue
                data = os.read(fd, CHUNK)
                if not data:
                    return
                self.pushed_bytes += len(data)
                yield data

        ok = False
        try:
            result = self.run(into, timeout=timeout, stdin=chunks(), title=title or f"send image {image}",
                              on_line=on_line, cancel=cancel)
            ok = True
        finally:
            if not ok:
                save.kill()
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


class _Cancelled(Exception):
    """Another thread asked a running command to stop."""


def _short(argv: tuple[str, ...] | list[str]) -> str:
    return f"{argv[0]} {argv[1] if len(argv) > 1 and not argv[1].startswith('-') else ''}".strip()


