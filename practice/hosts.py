"""Start, find and remove practice servers (containers running systemd + sshd).

Every container and volume made here carries the Docker label
``fleet-practice=<label>``; :func:`remove_hosts` removes exactly those. The
only addresses ever contacted are the ones ``docker inspect`` reports for
containers started here; nothing scans a network.

Boot watchdog: under a boot storm systemd in a container occasionally stalls
with every job "waiting". A host that has not reached ``running`` or
``degraded`` within :data:`BOOT_WATCHDOG` seconds is restarted.
"""
from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from practice.images import TESTHOST_IMAGE, run

log = logging.getLogger("practice")

LABEL_KEY = "fleet-practice"
BOOT_WATCHDOG = 60.0  # seconds before a stalled boot is restarted
PARALLEL = 20  # hosts started at once
USERS = ("root", "teacher", "student")
INOTIFY_LIMITS = {"max_user_instances": 8192, "max_user_watches": 1048576}


@dataclass
class TestHost:
    """A running practice server: container ``container`` reachable at ``address``."""

    __test__ = False  # not a pytest test class

    name: str
    address: str
    container: str


def make_keypair(directory: Path) -> tuple[Path, str]:
    """An ed25519 key pair in ``directory`` (made if missing).

    Returns the private key's path and the public key's text (one line).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "id_ed25519"
    pub = directory / "id_ed25519.pub"
    if not key.exists():
        pub.unlink(missing_ok=True)
        run(["ssh-keygen", "-t", "ed25519", "-N", "", "-q", "-C", "fleet-practice", "-f", str(key)],
            timeout=30)
    if not pub.exists():
        out = run(["ssh-keygen", "-y", "-f", str(key)], timeout=30).stdout
        pub.write_text(out)
    return key, pub.read_text().strip()


def cgroup_flags() -> list[str]:
    """``docker run`` flags for a systemd container, chosen by the host's cgroup version.

    cgroup v1 (``/sys/fs/cgroup`` is a tmpfs; the tested path): ``--privileged``
    fails where CAP_SYS_RESOURCE is withheld, so add every capability but that
    one and lift seccomp/apparmor/masked paths; boot.sh remounts the controllers
    writable. cgroup v2 (cgroup2fs): ``--privileged``.
    """
    fstype = run(["stat", "-fc", "%T", "/sys/fs/cgroup"], timeout=10).stdout.strip()
    common = ["--tmpfs", "/run", "--tmpfs", "/run/lock", "--cgroupns", "private"]
    if fstype == "cgroup2fs":
        return ["--privileged", *common]
    return ["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
            "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
            "--security-opt", "systempaths=unconfined", *common]


def _raise_inotify_limits() -> None:
    """As root, raise (never lower) the inotify limits every systemd host draws on."""
    if os.geteuid() != 0:
        return
    for name, wanted in INOTIFY_LIMITS.items():
        path = Path("/proc/sys/fs/inotify") / name
        try:
            if int(path.read_text()) < wanted:
                path.write_text(str(wanted))
        except (OSError, ValueError):
            log.warning("could not raise %s to %d", path, wanted)


def _label_filter(label: str) -> str:
    return f"label={LABEL_KEY}={label}"


def _container_label(name: str) -> str | None:
    """The fleet-practice label of an existing container, '' if none; None if no such container."""
    proc = run(["docker", "inspect", "-f", f'{{{{index .Config.Labels "{LABEL_KEY}"}}}}', name],
               timeout=30, check=False)
    if proc.returncode != 0:
        return None
    value = proc.stdout.strip()
    return "" if value == "<no value>" else value


def _volume_label(volume: str) -> str | None:
    proc = run(["docker", "volume", "inspect", "-f", f'{{{{index .Labels "{LABEL_KEY}"}}}}', volume],
               timeout=30, check=False)
    if proc.returncode != 0:
        return None
    value = proc.stdout.strip()
    return "" if value == "<no value>" else value


def _clear_stale(name: str, label: str) -> None:
    """Remove a leftover container/volume of this name from an earlier run with the same label."""
    owner = _container_label(name)
    if owner is not None:
        if owner != label:
            raise RuntimeError(f"a container named {name} exists and is not a practice host "
                               f"with label {LABEL_KEY}={label}; not touching it")
        log.info("%s: removing leftover container", name)
        run(["docker", "rm", "-f", name], timeout=60)
    volume = f"{name}-docker"
    owner = _volume_label(volume)
    if owner is not None:
        if owner != label:
            raise RuntimeError(f"a volume named {volume} exists without label {LABEL_KEY}={label}; "
                               "not touching it")
        run(["docker", "volume", "rm", "-f", volume], timeout=60)


def _system_state(name: str) -> str:
    """systemd's overall state inside the container (``running``, ``starting``, ...)."""
    proc = run(["docker", "exec", name, "systemctl", "is-system-running"], timeout=15, check=False)
    if proc.stdout.strip():
        return proc.stdout.strip()
    lines = proc.stderr.strip().splitlines()
    return lines[-1] if lines else "unknown"


def _address(name: str) -> str:
    proc = run(["docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name], timeout=30)
    address = proc.stdout.strip()
    if not address:  # attached to a user-defined network instead of the default bridge
        proc = run(["docker", "inspect", "-f",
                    "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name], timeout=30)
        address = (proc.stdout.split() or [""])[0]
    if not address:
        raise RuntimeError(f"{name}: docker inspect reports no IP address")
    return address


_KEY_SCRIPT = r"""
set -eu
key=$(cat)
for user in "$@"; do
  home=$(getent passwd "$user" | cut -d: -f6)
  group=$(id -gn "$user")
  install -d -m 700 -o "$user" -g "$group" "$home/.ssh"
  printf '%s\n' "$key" > "$home/.ssh/authorized_keys"
  chown "$user:$group" "$home/.ssh/authorized_keys"
  chmod 600 "$home/.ssh/authorized_keys"
done
"""


def _install_key(name: str, public_key: str) -> None:
    run(["docker", "exec", "-i", name, "sh", "-c", _KEY_SCRIPT, "sh", *USERS],
        timeout=30, input=public_key.strip() + "\n")


def _ssh_banner(address: str, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(256).startswith(b"SSH-")
    except OSError:
        return False


def _diagnose(name: str) -> str:
    jobs = run(["docker", "exec", name, "systemctl", "list-jobs", "--no-pager"], timeout=15, check=False)
    logs = run(["docker", "logs", "--tail", "20", name], timeout=15, check=False)
    text = (jobs.stdout.strip() or jobs.stderr.strip())[-1500:]
    tail = (logs.stdout + logs.stderr).strip()[-1500:]
    return f"systemctl list-jobs:\n{text}\ncontainer log tail:\n{tail}"


def _wait_booted(name: str, deadline: float, ssh_at: str | None = None) -> None:
    """Wait for running/degraded (or, with ``ssh_at``, for an SSH banner at that address, whichever is first);
    restart the container when a boot stalls for BOOT_WATCHDOG s."""
    booted_at = time.monotonic()
    restarts = 0
    state = "unknown"
    while time.monotonic() < deadline:
        state = _system_state(name)
        if state in ("running", "degraded") or (ssh_at and _ssh_banner(ssh_at, timeout=1.0)):
            if restarts:
                log.info("%s: booted after %d watchdog restart(s)", name, restarts)
            return
        if time.monotonic() - booted_at > BOOT_WATCHDOG:
            restarts += 1
            log.warning("%s: not booted after %.0f s (state %s); restarting it", name, BOOT_WATCHDOG, state)
            run(["docker", "restart", "-t", "5", name], timeout=60, check=False)
            booted_at = time.monotonic()
            continue
        time.sleep(0.5)
    raise RuntimeError(f"{name}: systemd did not reach running/degraded in time "
                       f"(last state {state!r}, {restarts} restart(s))\n{_diagnose(name)}")


def _wait_ssh(name: str, address: str, deadline: float) -> None:
    while True:
        if _ssh_banner(address):
            return
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{name}: no SSH banner from {address}:22 in time")
        time.sleep(0.5)


def _start_one(name: str, public_key: str, label: str, image: str, flags: list[str],
               deadline: float, files: dict[str, bytes] | None = None, until_ssh: bool = False) -> TestHost:
    _clear_stale(name, label)
    volume = f"{name}-docker"
    run(["docker", "volume", "create", "--label", f"{LABEL_KEY}={label}", volume], timeout=60)
    run(["docker", "create", "--name", name, "--hostname", name,
         "--label", f"{LABEL_KEY}={label}", *flags,
         "-v", f"{volume}:/var/lib/docker", image], timeout=120)
    if files:  # in place before the first boot (a cloud-init seed must be there when systemd starts)
        out = subprocess.run(["docker", "cp", "-", f"{name}:/"], input=_tar(files), capture_output=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"{name}: docker cp of its first-boot files failed: {out.stderr.decode()[-300:]}")
    run(["docker", "start", name], timeout=120)
    address = _address(name)
    _wait_booted(name, deadline, address if until_ssh else None)
    _install_key(name, public_key)
    _wait_ssh(name, address, deadline)
    return TestHost(name=name, address=address, container=name)


def _tar(files: dict[str, bytes]) -> bytes:
    """A tar stream of ``files`` (absolute path → content), root-owned, mode 0644, for ``docker cp -``."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def start_hosts(names: list[str], public_key: str, *, label: str, image: str = TESTHOST_IMAGE,
                timeout: float = 180, files: dict[str, dict[str, bytes]] | None = None,
                until_ssh: bool = False) -> list[TestHost]:
    """Start one practice server per name, in parallel; return them in the order of ``names``.

    Each container is named after its host, has a named volume ``<name>-docker``
    on /var/lib/docker (so Docker inside uses overlay2), and both carry the
    label ``fleet-practice=<label>``. Returns once every host has booted
    (systemd running/degraded, with the boot watchdog), has ``public_key`` in
    root's, teacher's and student's authorized_keys, and answers with an SSH
    banner on port 22, all within ``timeout`` seconds overall. ``files``: per
    host name, files (absolute path → content) put in place before it boots. ``until_ssh``: return once SSH
    answers even if the boot is still going on (a cloud machine whose cloud-init is still installing). On failure the
    containers started by this call are removed and RuntimeError names the
    hosts that failed and why.
    """
    if not names:
        return []
    if len(set(names)) != len(names):
        raise ValueError(f"host names must be unique: {names}")
    if not public_key.strip():
        raise ValueError("public_key is empty")
    _raise_inotify_limits()
    flags = cgroup_flags()
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(names)),
                            thread_name_prefix="practice-host") as pool:
        futures = [pool.submit(_start_one, n, public_key, label, image, flags, deadline, (files or {}).get(n),
                               until_ssh) for n in names]
        hosts: list[TestHost] = []
        errors: list[str] = []
        for name, future in zip(names, futures, strict=True):
            try:
                hosts.append(future.result())
            except Exception as exc:  # noqa: BLE001 - collected and reported together
                message = str(exc)
                errors.append(message if message.startswith(name) else f"{name}: {message}")
    if errors:
        for name in names:
            if _container_label(name) == label:
                run(["docker", "rm", "-f", name], timeout=60, check=False)
                run(["docker", "volume", "rm", "-f", f"{name}-docker"], timeout=60, check=False)
        raise RuntimeError(f"{len(errors)} of {len(names)} practice host(s) failed to start:\n"
                           + "\n".join(errors))
    log.info("%d practice host(s) up in %.1f s", len(hosts), time.monotonic() - started)
    return hosts


def remove_hosts(label: str) -> None:
    """Remove every container and volume labelled ``fleet-practice=<label>``."""
    ids = run(["docker", "ps", "-aq", "--filter", _label_filter(label)], timeout=30).stdout.split()
    if ids:
        run(["docker", "rm", "-f", "-v", *ids], timeout=300)
    volumes = run(["docker", "volume", "ls", "-q", "--filter", _label_filter(label)],
                  timeout=30).stdout.split()
    if volumes:
        run(["docker", "volume", "rm", "-f", *volumes], timeout=300)


def host_addresses(label: str) -> list[TestHost]:
    """The running practice servers with this label, sorted by name."""
    ids = run(["docker", "ps", "-q", "--filter", _label_filter(label)], timeout=30).stdout.split()
    hosts = []
    for cid in ids:
        name = run(["docker", "inspect", "-f", "{{.Name}}", cid], timeout=30).stdout.strip().lstrip("/")
        hosts.append(TestHost(name=name, address=_address(cid), container=name))
    return sorted(hosts, key=lambda h: _natural_key(h.name))


def _natural_key(name: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
