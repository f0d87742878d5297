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

# One `docker inspect` answers for the fleet's containers, its network and the
# images, whatever their type: a Go template that indexes a field works on the
# raw JSON of each object (the Docker CLI falls back to it when the typed
# template fails), so `index . "State"` tells a container from a network or an
# image. Every Docker CLI run costs ~20 ms of the host's CPU, so the probe makes
# two (three when the engine's version is asked for, for people to read).
INSPECT = (
    '{{if index . "State"}}{"name":{{json .Name}},"state":{{json .State.Status}},"image":{{json .Image}},'
    '"restarts":{{.RestartCount}},"labels":{{json .Config.Labels}},"ports":{{json .HostConfig.PortBindings}}}'
    '{{range .Mounts}}{{if eq .Destination "/data"}}{{"\\n"}}data {{$.Name}} {{.Source}}{{end}}{{end}}'
    '{{else if index . "IPAM"}}{"network":{{json .Name}},"labels":{{json .Labels}}}'
    '{{else}}{"image":{{json .Id}},"tags":{{json .RepoTags}},"digests":{{json .RepoDigests}}}{{end}}'
)

# $1 fleet name, $2 "version" or "", $3 the inspect template, $4 the fleet's network, then the images.
PROBE = r"""
fleet=$1 version=$2 format=$3 network=$4; shift 4
t() { timeout 20 "$@"; }
echo '--- os-release'; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
echo '--- arch'; uname -m
echo '--- systemd'; if [ -d /run/systemd/system ]; then echo yes; else echo no; fi
echo '--- cpus'; nproc 2>/dev/null || getconf _NPROCESSORS_ONLN
echo '--- memory'; sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo
echo '--- tcp'; cat /proc/net/tcp /proc/net/tcp6 2>/dev/null
echo '--- package-manager'; for p in apt-get dnf yum; do command -v $p >/dev/null 2>&1 && { echo $p; break; }; done
echo '--- cloud-init'
if [ ! -d /run/cloud-init ] && ! command -v cloud-init >/dev/null 2>&1; then echo absent
elif [ -e /run/cloud-init/result.json ] || [ -e /var/lib/cloud/instance/boot-finished ]; then echo done
else echo running; fi
echo '--- docker'; command -v docker || true
echo '--- curl'; command -v curl || true
echo '--- firstboot'; cat /var/lib/fleet/firstboot 2>/dev/null
echo '--- docker-version'; [ "$version" = version ] && t docker version --format '{{.Server.Version}}' 2>/dev/null
echo '--- engine'
out= engine=
if ids=$(t docker ps --all --quiet --filter "label=fleet.name=$fleet" 2>/dev/null); then
  echo answers; engine=1
  # shellcheck disable=SC2086 # ids: one word each
  out=$(t docker inspect --format "$format" $ids "$network" "$@" 2>/dev/null)
fi
echo '--- lookups'; printf '%s\n' "$@"
echo '--- objects'; [ -n "$out" ] && printf '%s\n' "$out"
echo '--- firewall'
if command -v ufw >/dev/null 2>&1; then echo ufw; grep -q '^ENABLED=yes' /etc/ufw/ufw.conf 2>/dev/null && echo active
elif command -v firewall-cmd >/dev/null 2>&1; then echo firewalld; systemctl is-active --quiet firewalld 2>/dev/null && echo active; fi
echo '--- firewall-ports'; cat "/etc/fleet/$fleet/firewall" 2>/dev/null
echo '--- proxy-ca'  # from the proxy's data volume on the host's disk: a docker exec would cost as much as the rest
data=$(printf '%s\n' "$out" | sed -n "s|^data /$fleet-proxy ||p")
if [ -z "$data" ] && [ -n "$engine" ]; then  # no proxy container now: its volume (certificates) may still be there
  data=$(t docker volume inspect --format '{{.Mountpoint}}' "$fleet-proxy-data" 2>/dev/null)
fi
[ -n "$data" ] && cat "$data/caddy/pki/authorities/local/root.crt" 2>/dev/null
echo '--- certificates'  # what the proxy's storage holds: each certificate's first (leaf) block
if [ -n "$data" ]; then for f in "$data"/caddy/certificates/*/*/*.crt; do
  [ -f "$f" ] && { echo "file ${f#"$data"/}"; sed -n '1,/-----END CERTIFICATE-----/p' "$f"; }
done; fi
echo '--- data'  # the manifests of the course data fleet keeps on this host (fleet/coursedata.py)
for f in "/var/lib/fleet/$fleet/data/"*.manifest; do [ -f "$f" ] && { echo "manifest ${f##*/}"; cat "$f"; echo; }; done
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
    cloud_init: str  # absent | running | done
    docker_installed: bool
    docker_running: bool  # the engine answered
    docker_version: str = ""  # only when asked for (plan and status show it)
    curl: bool = True  # seats are asked with curl (fleet.ready); the plan installs it when missing
    firstboot: str = ""  # how Docker's install at first boot ended (fleet/firstboot.py): "ok", "failed: ...", ""
    containers: dict[str, Container] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)  # name -> image id ("" when absent)
    networks: frozenset[str] = frozenset()
    proxy_ca: str = ""  # PEM root certificate of the TLS proxy's own authority, once it has one
    certificates: tuple[tuple[str, str], ...] = ()  # in the proxy's storage: (path in its data volume, leaf PEM)
    firewall_tool: str = ""  # ufw | firewalld | "" (none installed)
    firewall_active: bool = False
    firewall_ports: tuple[int, ...] = ()  # the ports fleet opened last time (/etc/fleet/NAME/firewall)
    data: dict[str, str] = field(default_factory=dict)  # course data: key → the manifest of what the host has

    @property
    def docker_state(self) -> str:
        """For people: the engine's version, or why there is none."""
        if self.docker_running:
            return f"Docker {self.docker_version or 'running'}"
        return "Docker installed, not running" if self.docker_installed else "no Docker"

    @property
    def os_name(self) -> str:
        return self.os_release.get("PRETTY_NAME") or self.os_release.get("ID", "unknown Linux")

    def distro(self) -> distro.Distro:
        return distro.detect(self.os_release)


def probe(fleet: str, network: str, images: list[str], timeout: int = 60, *, version: bool = False) -> Run:
    """The one round trip that gathers a host's facts (the engine's version only when asked for)."""
    return Run("gather facts", ("sh", "-c", PROBE, "sh", fleet, "version" if version else "", INSPECT, network,
                                *images), timeout)


def familiar(reference: str) -> str:
    """An image reference as Docker lists it in an image's RepoTags or RepoDigests.

    Docker Hub's prefixes are dropped and a bare name means :latest; a digest
    reference drops its tag (``a:1@sha256:..`` is listed as ``a@sha256:..``).
    """
    name, at, digest = reference.partition("@")
    for prefix in ("docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if name.startswith("library/") and name.count("/") == 1:
        name = name[len("library/"):]
    path, _, last = name.rpartition("/")
    repo, colon, _tag = last.partition(":")
    if at:
        return f"{path + '/' if path else ''}{repo}@{digest}"
    return name if colon else f"{name}:latest"


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


def _certificates(lines: list[str]) -> tuple[tuple[str, str], ...]:
    """The certificates section: ``file PATH`` followed by that file's first PEM block."""
    out: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("file "):
            out.append((line[5:].strip(), []))
        elif out:
            out[-1][1].append(line)
    return tuple((path, _pem(pem)) for path, pem in out if _pem(pem))


def _manifests(lines: list[str]) -> dict[str, str]:
    """The data section: ``manifest KEY.manifest`` followed by that file's line(s)."""
    out: dict[str, list[str]] = {}
    current = None
    for line in lines:
        if line.startswith("manifest ") and line.endswith(".manifest"):
            current = line[len("manifest "):-len(".manifest")]
            out[current] = []
        elif current is not None and line:
            out[current].append(line)
    return {key: "\n".join(text) for key, text in out.items()}


def parse(text: str) -> Facts:
    """Turn the probe's output into Facts; raises ValueError if it was cut short."""
    s = sections(text)
    if "end" not in s:
        raise ValueError("the fact probe's output was cut short")

    def one(name: str, default: str = "") -> str:
        lines = [x for x in s.get(name, []) if x.strip()]
        return lines[0].strip() if lines else default

    containers, networks, found = {}, set(), {}
    for line in s.get("objects", []):
        if not line.startswith("{"):
            continue  # "data NAME PATH": the probe's own note of where the proxy keeps its certificates
        o = json.loads(line)
        if "network" in o:
            if "fleet.name" in (o.get("labels") or {}):
                networks.add(o["network"])
        elif "image" in o and "tags" in o:
            for ref in (o.get("tags") or []) + (o.get("digests") or []):
                found[ref] = o["image"]
            found[o["image"]] = o["image"]
        else:
            name = o["name"].lstrip("/")
            ports = tuple(sorted({int(b["HostPort"]) for bindings in (o.get("ports") or {}).values()
                                  for b in bindings or [] if b.get("HostPort")}))
            containers[name] = Container(name, o["state"], o["image"], int(o["restarts"]), o.get("labels") or {}, ports)
    images = {ref: found.get(familiar(ref), "") for ref in s.get("lookups", []) if ref}
    return Facts(
        os_release=distro.parse_os_release("\n".join(s.get("os-release", []))),
        arch=one("arch"),
        systemd=one("systemd") == "yes",
        cpus=int(one("cpus", "0") or 0),
        memory_kb=int(one("memory", "0") or 0),
        ports_in_use=listening_ports(s.get("tcp", [])),
        package_manager=one("package-manager"),
        cloud_init=one("cloud-init", "absent"),
        docker_installed=bool(one("docker")),
        docker_running=one("engine") == "answers",
        docker_version=one("docker-version"),
        curl=bool(one("curl")) if "curl" in s else True,
        firstboot=one("firstboot"),
        containers=containers,
        images=images,
        networks=frozenset(networks),
        proxy_ca=_pem(s.get("proxy-ca", [])),
        certificates=_certificates(s.get("certificates", [])),
        firewall_tool=one("firewall"),
        firewall_active="active" in s.get("firewall", []),
        firewall_ports=tuple(int(p) for p in one("firewall-ports").split() if p.isdigit()),
        data=_manifests(s.get("data", [])),
    )
