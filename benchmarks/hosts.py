"""Benchmark hosts: the project's real test hosts (systemd + OpenSSH + their own Docker), labelled, counted.

Everything here that looks inside a host uses ``docker exec`` on its container,
never SSH, so that the hosts' sshd journals hold only what the tools under test
did. Connections and commands are counted from those journals: sshd runs at
LogLevel VERBOSE on benchmark hosts (benchmarks/images/host) and logs

    Accepted publickey for root from 172.17.0.1 port 50612 ssh2: ED25519 SHA256:...
    Starting session: command for root from 172.17.0.1 port 50612 id 0
    Starting session: subsystem 'sftp' for root from 172.17.0.1 port 50612 id 1

one "Accepted" line per SSH connection and one "Starting session" line per
command or SFTP session on it: the round trips.
"""
from __future__ import annotations

import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from practice import hosts as practice_hosts
from practice.images import TESTHOST_IMAGE, ensure_testhost_image

ROOT = Path(__file__).resolve().parent.parent
IMAGES = Path(__file__).resolve().parent / "images"
HOST_DOCKER = "fleet-benchhost:docker"  # Docker (docker.io) installed and running
HOST_FRESH = "fleet-benchhost:fresh"  # no Docker, no package lists: a fresh server
SEAT_IMAGE = "fleet-bench-seat:test"


def sh(argv: list[str], *, timeout: float = 120, input: bytes | None = None, check: bool = True) -> str:
    out = subprocess.run(argv, capture_output=True, timeout=timeout, input=input,
                         stdin=None if input is not None else subprocess.DEVNULL)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}: exit {out.returncode}: {out.stderr.decode(errors='replace')[-800:]}")
    return out.stdout.decode(errors="replace")


def build_images() -> None:
    """The two benchmark host images and the seat image (Docker's build cache makes this quick the second time)."""
    ensure_testhost_image()
    sh(["docker", "build", "-q", "-t", SEAT_IMAGE, str(IMAGES / "seat")], timeout=900)
    for tag, docker in ((HOST_FRESH, "no"), (HOST_DOCKER, "yes")):
        sh(["docker", "build", "-q", "--build-arg", f"BASE={TESTHOST_IMAGE}", "--build-arg", f"DOCKER={docker}",
            "-t", tag, str(IMAGES / "host")], timeout=1800)


@dataclass
class Host:
    name: str
    address: str
    container: str

    def cpu_seconds(self) -> float:
        """CPU time used so far by everything in this host (its cgroup, nested containers included)."""
        if not getattr(self, "_cgroup", None):
            full = sh(["docker", "inspect", "-f", "{{.Id}}", self.container]).strip()
            self._cgroup = next((p for p in (f"/sys/fs/cgroup/cpuacct/docker/{full}/cpuacct.usage",
                                             f"/sys/fs/cgroup/system.slice/docker-{full}.scope/cpu.stat")
                                 if Path(p).exists()), "")
        if not self._cgroup:
            return 0.0
        text = Path(self._cgroup).read_text()
        if self._cgroup.endswith("cpuacct.usage"):
            return int(text) / 1e9
        return int(next(line.split()[1] for line in text.splitlines() if line.startswith("usage_usec"))) / 1e6

    def exec(self, *argv: str, timeout: float = 120, input: bytes | None = None, check: bool = True) -> str:
        return sh(["docker", "exec", *(["-i"] if input is not None else []), self.container, *argv],
                  timeout=timeout, input=input, check=check)


def parallel(fn, items, workers: int = 8) -> list:  # noqa: ANN001
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        return list(pool.map(fn, items))


class Pool:
    """Test hosts started for one benchmark run; all carry the label and are removed by :meth:`remove`."""

    def __init__(self, label: str, keydir: Path):
        self.label = label
        self.key, self.public = practice_hosts.make_keypair(keydir)
        self.known_hosts = keydir / "known_hosts"  # the host keys of every running host, for the peers
        self.known_hosts.write_text("")
        self.hosts: list[Host] = []
        self._keys: dict[str, list[str]] = {}
        self.gateway = ""

    def start(self, count: int, image: str, prefix: str) -> list[Host]:
        names = [f"{self.label}-{prefix}{i}" for i in range(1, count + 1)]
        started = practice_hosts.start_hosts(names, self.public, label=self.label, image=image,
                                             timeout=max(300, 10 * count))
        hosts = [Host(h.name, h.address, h.container) for h in started]
        self.hosts += hosts
        if not self.gateway:
            self.gateway = sh(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.Gateway}}{{end}}",
                               hosts[0].container]).strip()
        if image == HOST_DOCKER:
            parallel(self._ready_docker, hosts)
        for h, keys in zip(hosts, parallel(_host_keys, hosts), strict=True):
            self._keys[h.container] = keys
        self._write_known_hosts()
        return hosts

    def _ready_docker(self, host: Host) -> None:
        """Docker answers, the package lists count as fresh (updated today), the seat image is there."""
        deadline = time.monotonic() + 120
        while host.exec("docker", "info", check=False, timeout=30) == "":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{host.name}: Docker did not start")
            time.sleep(1)
        host.exec("sh", "-c", "mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/update-success-stamp "
                  "/var/lib/apt/lists")
        load_image(host, SEAT_IMAGE)

    def remove(self, hosts: list[Host] | None = None) -> None:
        if hosts is None:
            practice_hosts.remove_hosts(self.label)
            self.hosts = []
            return
        names = [h.container for h in hosts]
        sh(["docker", "rm", "-f", "-v", *names], timeout=300, check=False)
        sh(["docker", "volume", "rm", "-f", *[f"{n}-docker" for n in names]], timeout=300, check=False)
        self.hosts = [h for h in self.hosts if h.container not in names]
        for n in names:
            self._keys.pop(n, None)
        self._write_known_hosts()  # a new host may get a removed one's address

    def _write_known_hosts(self) -> None:
        self.known_hosts.write_text("".join(line + "\n" for keys in self._keys.values() for line in keys))


def _host_keys(h: Host) -> list[str]:
    """The host's SSH keys, read from its files (no network scan), as known_hosts lines."""
    text = h.exec("sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub")
    return [f"{h.address} {' '.join(line.split()[:2])}" for line in text.splitlines() if line.strip()]


_saved: dict[str, bytes] = {}


def saved(image: str) -> bytes:
    if image not in _saved:
        _saved[image] = subprocess.run(["docker", "save", image], capture_output=True, check=True, timeout=600).stdout
    return _saved[image]


def load_image(host: Host, image: str) -> None:
    host.exec("docker", "load", "-q", input=saved(image), timeout=600)


@dataclass
class SshdEvents:
    """What sshd logged on one host, with the time of each line (seconds since the epoch)."""

    accepted: list[tuple[float, str]]  # (time, source address)
    sessions: list[tuple[float, str, str]]  # (time, kind: command|subsystem|shell|forced-command, source)


def sshd_events(host: Host, since: float) -> SshdEvents:
    text = host.exec("journalctl", "-u", "ssh", "--no-pager", "-o", "short-unix", "--since", f"@{since:.0f}",
                     timeout=60, check=False)
    accepted, sessions = [], []
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 3:
            continue
        try:
            t = float(parts[0])
        except ValueError:
            continue
        msg = parts[2].split(": ", 1)[1] if ": " in parts[2] else parts[2]
        if msg.startswith("Accepted publickey") and " from " in msg:
            accepted.append((t, msg.split(" from ")[1].split()[0]))
        elif msg.startswith("Starting session: ") and " from " in msg:
            kind = msg[len("Starting session: "):].split()[0]
            sessions.append((t, kind, msg.split(" from ")[1].split()[0]))
    return SshdEvents(accepted, sessions)


def count_window(events: list[SshdEvents], start: float, end: float, controller: str) -> dict:
    """Per-host counts for one run: logins and sessions from this computer, and logins from other hosts (relay)."""
    per = []
    for ev in events:  # no margin before the start: the previous run's last lines must not count here
        c = Counter()
        for t, src in ev.accepted:
            if start <= t <= end + 0.5:
                c["connections" if src == controller else "host_to_host"] += 1
        for t, _kind, src in ev.sessions:
            if start <= t <= end + 0.5 and src == controller:
                c["sessions"] += 1
        per.append(c)
    return {key: [c[key] for c in per] for key in ("connections", "sessions", "host_to_host")}


def reset_containers(host: Host, prefix: str, *, image: str | None = None) -> None:
    """Back to "Docker present, no seats" for one tool (and without ``image``, when given)."""
    script = r"""
p=$1 img=$2
ids=$(docker ps -aq --filter "name=^/$p-")
[ -z "$ids" ] || docker rm -f $ids >/dev/null
docker network rm "$p-seats" >/dev/null 2>&1 || true
rm -rf "/etc/$p" "/var/tmp/$p-image.tar"
if [ -n "$img" ]; then docker rmi -f "$img" >/dev/null 2>&1 || true; fi
true
"""
    host.exec("sh", "-c", script, "sh", prefix, image or "", timeout=300)
