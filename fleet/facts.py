"""Facts: what a host is, gathered by one probe script in one SSH round trip.

The probe is a fixed POSIX sh script; the fleet name and image names reach it
as positional arguments. Its output is sections headed ``--- name``; parsing
is a pure function, tested on captured output.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from fleet import distro
from fleet.steps import Run

PROBE = r"""
fleet=$1; shift
t() { timeout 20 "$@"; }
echo '--- os-release'; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
echo '--- arch'; uname -m
echo '--- systemd'; if [ -d /run/systemd/system ]; then echo yes; else echo no; fi
echo '--- cpus'; nproc 2>/dev/null || getconf _NPROCESSORS_ONLN
echo '--- memory'; sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo
echo '--- tcp'; cat /proc/net/tcp /proc/net/tcp6 2>/dev/null
echo '--- package-manager'; for p in apt-get dnf yum; do command -v $p >/dev/null 2>&1 && { echo $p; break; }; done
echo '--- locks'; ls -l /proc/[0-9]*/fd 2>/dev/null | grep -E '/var/lib/dpkg/lock|/var/lib/apt/lists/lock|/var/run/yum.pid' || true
echo '--- cloud-init'
if [ ! -d /run/cloud-init ] && ! command -v cloud-init >/dev/null 2>&1; then echo absent
elif [ -e /run/cloud-init/result.json ] || [ -e /var/lib/cloud/instance/boot-finished ]; then echo done
else echo running; fi
echo '--- docker'; command -v docker || true
echo '--- docker-version'; t docker version --format '{{.Server.Version}}' 2>/dev/null || true
echo '--- containers'
ids=$(t docker ps --all --quiet --filter "label=fleet.name=$fleet" 2>/dev/null)
c=; [ -n "$ids" ] && c=$(t docker inspect --format '{"name":{{json .Name}},"state":{{json .State.Status}},"image":{{json .Image}},"restarts":{{.RestartCount}},"labels":{{json .Config.Labels}},"ports":{{json .HostConfig.PortBindings}}}' $ids)
[ -n "$c" ] && printf '%s\n' "$c"
echo '--- networks'; t docker network ls --quiet --filter "label=fleet.name=$fleet" --format '{{.Name}}' 2>/dev/null
echo '--- firewall'
if command -v ufw >/dev/null 2>&1; then echo ufw; grep -q '^ENABLED=yes' /etc/ufw/ufw.conf 2>/dev/null && echo active
elif command -v firewall-cmd >/dev/null 2>&1; then echo firewalld; systemctl is-active --quiet firewalld 2>/dev/null && echo active; fi
echo '--- firewall-ports'; cat "/etc/fleet/$fleet/firewall" 2>/dev/null
echo '--- proxy-ca'  # only where the proxy container exists: a docker exec costs as much as the rest
case $c in *"\"name\":\"/$fleet-proxy\""*) t docker exec "$fleet-proxy" cat /data/caddy/pki/authorities/local/root.crt 2>/dev/null ;; esac
echo '--- images'
for img; do printf '%s\t%s\n' "$img" "$(t docker image inspect --format '{{.Id}}' "$img" 2>/dev/null)"; done
echo '--- end'
"""


@dataclass(frozen=True)
class Container:
    name: str
    state: str  # created | running | restarting | exited | paused | dead
    image_id: str
    restarts: int
    labels: dict[str, str]
    host_ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class Facts:
    os_release: dict[str, str]
    arch: str
    systemd: bool
    cpus: int
    memory_kb: int
    ports_in_use: frozenset[int]
    package_manager: str
    lock_holders: tuple[str, ...]
    cloud_init: str  # absent | running | done
    docker_installed: bool
    docker_version: str  # empty when the engine does not answer
    containers: dict[str, Container] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)  # name -> image id ("" when absent)
    networks: frozenset[str] = frozenset()
    proxy_ca: str = ""  # PEM root certificate of the TLS proxy's own authority, once it has one
    firewall_tool: str = ""  # ufw | firewalld | "" (none installed)
    firewall_active: bool = False
    firewall_ports: tuple[int, ...] = ()  # the ports fleet opened last time (/etc/fleet/NAME/firewall)

    @property
    def docker_running(self) -> bool:
        return bool(self.docker_version)

    @property
    def docker_state(self) -> str:
        """For people: the engine's version, or why there is none."""
        if self.docker_running:
            return f"Docker {self.docker_version}"
        return "Docker installed, not running" if self.docker_installed else "no Docker"

    @property
    def os_name(self) -> str:
        return self.os_release.get("PRETTY_NAME") or self.os_release.get("ID", "unknown Linux")

    def distro(self) -> distro.Distro:
        return distro.detect(self.os_release)


def probe(fleet: str, images: list[str], timeout: int = 60) -> Run:
    """The one round trip that gathers a host's facts."""
    return Run("gather facts", ("sh", "-c", PROBE, "sh", fleet, *images), timeout)


def sections(text: str) -> dict[str, list[str]]:
    """Output headed ``--- name`` lines → name: lines (the probe's and the usage script's format)."""
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("--- "):
            current = line[4:].strip()
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return out


def listening_ports(lines: list[str]) -> frozenset[int]:
    """TCP ports in LISTEN state (st 0A), from /proc/net/tcp and tcp6."""
    ports = set()
    for line in lines:
        cols = line.split()
        if len(cols) > 3 and cols[3] == "0A" and ":" in cols[1]:
            ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return frozenset(ports)


def _pem(lines: list[str]) -> str:
    text = "\n".join(lines).strip()
    return text + "\n" if text.startswith("-----BEGIN CERTIFICATE-----") else ""


def parse(text: str) -> Facts:
    """Turn the probe's output into Facts; raises ValueError if it was cut short."""
    s = sections(text)
    if "end" not in s:
        raise ValueError("the fact probe's output was cut short")

    def one(name: str, default: str = "") -> str:
        lines = [x for x in s.get(name, []) if x.strip()]
        return lines[0].strip() if lines else default

    containers = {}
    for line in s.get("containers", []):
        if line.strip().startswith("{"):
            c = json.loads(line)
            name = c["name"].lstrip("/")
            ports = tuple(sorted({int(b["HostPort"]) for bindings in (c.get("ports") or {}).values()
                                  for b in bindings or [] if b.get("HostPort")}))
            containers[name] = Container(name, c["state"], c["image"], int(c["restarts"]), c.get("labels") or {}, ports)
    images = {}
    for line in s.get("images", []):
        if line:
            name, _, image_id = line.partition("\t")
            images[name] = image_id.strip()
    return Facts(
        os_release=distro.parse_os_release("\n".join(s.get("os-release", []))),
        arch=one("arch"),
        systemd=one("systemd") == "yes",
        cpus=int(one("cpus", "0") or 0),
        memory_kb=int(one("memory", "0") or 0),
        ports_in_use=listening_ports(s.get("tcp", [])),
        package_manager=one("package-manager"),
        lock_holders=tuple(x.split("->")[-1].strip() for x in s.get("locks", []) if x.strip()),
        cloud_init=one("cloud-init", "absent"),
        docker_installed=bool(one("docker")),
        docker_version=one("docker-version"),
        containers=containers,
        images=images,
        networks=frozenset(x.strip() for x in s.get("networks", []) if x.strip()),
        proxy_ca=_pem(s.get("proxy-ca", [])),
        firewall_tool=one("firewall"),
        firewall_active="active" in s.get("firewall", []),
        firewall_ports=tuple(int(p) for p in one("firewall-ports").split() if p.isdigit()),
    )
