"""The Steps that put Docker on a host and start it.

Two sources: ``official`` is Docker's own repository, set up exactly as
Docker's install pages describe per family; ``distro`` is the distribution's
own package (older, but no third-party repository). Either way the host is
first left alone by cloud-init and the package locks, because a fresh cloud
machine is usually still running its first-boot upgrades when we arrive, and
apt or dnf would otherwise fail with "could not get lock" at once.

Nothing here runs anything: it returns Steps. Every shell script is a
constant of this module and every variable value reaches it as a positional
argument, so no host-supplied text is ever parsed as shell code.
"""
from __future__ import annotations

import re
from typing import Protocol

from fleet.distro import Distro
from fleet.errors import InputError, UnsupportedOS
from fleet.steps import Run, Step, Upload, sh

DOWNLOAD = "https://download.docker.com/linux"
KEYRING_DIR = "/etc/apt/keyrings"
KEYRING = f"{KEYRING_DIR}/docker.asc"
APT_SOURCE = "/etc/apt/sources.list.d/docker.list"
YUM_REPO = "/etc/yum.repos.d/docker-ce.repo"
CE_PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin")

# dpkg and apt hold these with fcntl locks for as long as they run.
APT_LOCKS = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock")
# yum and dnf 4 write their PID into *.pid files; rpm (and so dnf 5, which fails
# at once instead of waiting) holds .rpm.lock open during a transaction. The
# rpm database moved to /usr/lib/sysimage/rpm on Fedora, and a descriptor's
# link names the real path, so both spellings are listed.
RPM_LOCKS = (
    "/var/run/yum.pid",
    "/var/cache/dnf/rpmdb_lock.pid",
    "/var/cache/dnf/metadata_lock.pid",
    "/var/cache/dnf/download_lock.pid",
    "/var/lib/rpm/.rpm.lock",
    "/usr/lib/sysimage/rpm/.rpm.lock",
)

DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf"}

# $1 label, $2 seconds, $3... lock paths. A path ending in .pid is held while
# the PID written in it is alive; any other path is held while some process has
# it open. Open files are found by reading /proc/*/fd links, because fuser and
# lsof are often not installed and dpkg's fcntl locks are invisible to flock.
# One `find -lname` per lock reads the links in a single process (a readlink
# per descriptor took longer than the wait itself on a busy machine).
WAIT_FOR_LOCKS = r"""
label=$1 limit=$2
shift 2
start=$(date +%s) last=
while :; do
  holder=
  for lock in "$@"; do
    case $lock in
      *.pid)
        pid=$(cat "$lock" 2>/dev/null) || pid=
        case $pid in
          ''|*[!0-9]*) ;;
          *) if [ -d "/proc/$pid" ]; then holder=$pid; break; fi ;;
        esac ;;
    esac
  done
  if [ -z "$holder" ]; then
    for lock in "$@"; do
      # one find reads every descriptor link itself: no process per descriptor
      fd=$(find /proc/[0-9]*/fd -maxdepth 1 -lname "$lock" -print -quit 2>/dev/null)
      if [ -n "$fd" ]; then
        holder=${fd#/proc/}
        holder=${holder%%/*}
        break
      fi
    done
  fi
  [ -z "$holder" ] && exit 0
  name=$(cat "/proc/$holder/comm" 2>/dev/null) || name=gone
  if [ "$holder" != "$last" ]; then
    echo "waiting up to ${limit}s for the $label, held by PID $holder ($name)" >&2
    last=$holder
  fi
  if [ $(( $(date +%s) - start )) -ge "$limit" ]; then
    echo "gave up after ${limit}s: the $label is still held by PID $holder ($name)" >&2
    exit 1
  fi
  sleep 1
done
"""

# $1 seconds. Exit status 2 of `cloud-init status --wait` (cloud-init 23.4+)
# means it finished with recoverable errors ("degraded done"), and 1 means it
# finished with an error: either way it no longer runs, which is all we wait
# for, so both go on (1 with a warning). Only a timeout stops the install.
WAIT_FOR_CLOUD_INIT = r"""
limit=$1
command -v cloud-init >/dev/null 2>&1 || exit 0
case $(cloud-init status 2>/dev/null) in
  *running*|*'not started'*|*'not run'*)
    echo "waiting up to ${limit}s for cloud-init to finish its first boot" >&2 ;;
esac
timeout "$limit" cloud-init status --wait >/dev/null
rc=$?
case $rc in
  0|2) exit 0 ;;
  1) echo "cloud-init finished with an error (see: cloud-init status --long); going on" >&2; exit 0 ;;
  124) echo "cloud-init was still running after ${limit}s (see: cloud-init status --long)" >&2; exit 1 ;;
  *) exit "$rc" ;;
esac
"""

# $1 package manager. Docker's .repo file is fetched with curl, and fleet asks each seat with it
# (fleet/ready.py); on RHEL 9 `dnf install curl` would clash with curl-minimal, so install only if
# absent. apt's lists may be empty on a fresh image: update them only when the install fails.
ENSURE_CURL = r"""
command -v curl >/dev/null 2>&1 && exit 0
case $1 in
  apt-get) export DEBIAN_FRONTEND=noninteractive
           apt-get -q -y install curl ca-certificates || { apt-get -q update && apt-get -q -y install curl ca-certificates; } ;;
  *) "$1" -y install curl ;;
esac
"""

# Without systemd: enable at boot with whichever tool the init system has.
START_DOCKER_SYSV = r"""
set -e
if command -v update-rc.d >/dev/null 2>&1; then update-rc.d docker defaults
elif command -v chkconfig >/dev/null 2>&1; then chkconfig docker on
fi
if command -v service >/dev/null 2>&1; then service docker start
else /etc/init.d/docker start
fi
"""

# $1 seconds. The daemon can take a while to answer after start (first start
# sets up its storage); report its last complaint if it never does. Each
# `docker info` is itself bounded, as a daemon that accepts the connection but
# hangs would otherwise outlast the limit.
WAIT_FOR_DOCKER = r"""
limit=$1
start=$(date +%s) said=
until err=$(timeout 10 docker info 2>&1 >/dev/null); do
  if [ $(( $(date +%s) - start )) -ge "$limit" ]; then
    echo "docker did not answer 'docker info' within ${limit}s: ${err:-no answer}" >&2
    exit 1
  fi
  if [ -z "$said" ]; then
    echo "waiting up to ${limit}s for the docker daemon to answer" >&2
    said=1
  fi
  sleep 1
done
"""

# $1 seconds. A package installation cut off by a power loss, a stopped
# server or a dropped SSH session leaves dpkg half done, and apt then refuses
# everything ("dpkg was interrupted, you must manually run 'dpkg --configure
# -a'"); Docker may even be unpacked but never configured (no docker group,
# so its socket cannot start). Finish dpkg's work first, waiting (bounded) if
# another process holds its lock. A package cut off while it was being
# unpacked (half-installed) cannot be configured, and so neither can what
# depends on it: then apt's own repair (`apt-get -f install`) unpacks it
# again and configures the rest. A no-op, and silent, when nothing is
# pending or the host has no dpkg.
REPAIR_DPKG = r"""
limit=$1
command -v dpkg >/dev/null 2>&1 || exit 0
[ -n "$(dpkg --audit 2>/dev/null)" ] || exit 0
echo "waiting for dpkg --configure -a to finish an interrupted package installation" >&2
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
repair() {
  if out=$(dpkg --force-confdef --force-confold --configure -a 2>&1); then
    [ -z "$(dpkg --audit 2>/dev/null)" ] && return 0
  else
    case $out in *lock*) return 1 ;; esac
  fi
  out=$(apt-get -q -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -f install 2>&1) || return 1
  [ -z "$(dpkg --audit 2>/dev/null)" ] && return 0
  out="dpkg --audit still lists: $(dpkg --audit 2>&1 | grep '^ ' | tr -s ' ' | head -n 3 | tr '\n' ',')"
  return 1
}
until repair; do
  case $out in
    *lock*)
      if [ $(( $(date +%s) - start )) -ge "$limit" ]; then
        echo "gave up after ${limit}s waiting for the dpkg lock to finish an interrupted installation" >&2
        exit 1
      fi
      sleep 2 ;;
    *) printf '%s\n' "$out" | tail -n 3 >&2; exit 1 ;;
  esac
done
"""

DOCKER_WAIT = 60
GRACE = 60  # added to every step that contains a bounded wait of its own


class Timeouts(Protocol):
    """The seconds this module needs (fleet.inventory.Timeouts has them)."""

    install: int
    lock: int
    cloud_init: int


class _Defaults:
    install = 900
    lock = 300
    cloud_init = 600


def deb_arch(machine: str) -> str:
    """Debian's name for the CPU that ``uname -m`` reports, for the repo's ``arch=``."""
    try:
        return DEB_ARCH[machine]
    except KeyError:
        raise UnsupportedOS(
            f"CPU architecture {machine or '(unknown)'!r} (uname -m) is not supported; "
            f"supported: {', '.join(DEB_ARCH)}"
        ) from None


def rpm_tool(distro: Distro) -> str:
    """yum on CentOS/RHEL 7 and Amazon Linux 2, dnf everywhere newer."""
    old = (distro.family == "rhel" and distro.major <= 7) or (distro.family == "amazon" and distro.major == 2)
    return "yum" if old else "dnf"


def apt_repo_line(distro: Distro, arch: str) -> str:
    """The sources.list line of Docker's install page, with our values filled in.

    The codename comes from the host, so it is checked to be a plain word: it is
    only ever written into this file, but apt should not read garbage either.
    """
    if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", distro.codename):
        raise UnsupportedOS(
            f"{distro.pretty}: cannot tell its release codename for Docker's repository "
            f"(VERSION_CODENAME is {distro.codename!r})"
        )
    url = f"{DOWNLOAD}/{distro.repo_os}"
    return f"deb [arch={arch} signed-by={KEYRING}] {url} {distro.codename} stable\n"


def docker_install_steps(
    distro: Distro, source: str, *, arch: str, systemd: bool, timeouts: Timeouts | None = None
) -> list[Step]:
    """Everything from a bare host to a Docker daemon that answers."""
    t = timeouts or _Defaults()
    if source not in ("official", "distro"):
        raise InputError(f"unknown source {source!r}; use official or distro", field="docker.source")
    if distro.family == "debian":
        body = _apt_official(distro, arch, t) if source == "official" else _apt_distro(t)
        waits = [*_lock_wait("apt/dpkg lock", APT_LOCKS, t), repair_step(t)]
    else:
        body = _rpm_body(distro, source, t)
        waits = _lock_wait("yum/dnf/rpm lock", RPM_LOCKS, t)
    return [*_cloud_init_wait(t), *waits, *body, *start_docker_steps(systemd, repair=False)]


def repair_step(timeouts: Timeouts | None = None) -> Step:
    """Finish a package installation that was cut off (see REPAIR_DPKG)."""
    t = timeouts or _Defaults()
    return sh("finish any interrupted package installation", REPAIR_DPKG, str(max(t.lock, 0)),
              timeout=max(t.lock, 0) + t.install)


def start_docker_steps(systemd: bool, *, repair: bool = True) -> list[Step]:
    """Enable Docker at boot, start it, and wait until it answers.

    Docker that is installed but does not run may be a package installation
    that was cut off: with ``repair``, dpkg finishes it first.
    """
    steps = [repair_step()] if repair else []
    if systemd:
        start: Step = Run("enable and start Docker", ("systemctl", "enable", "--now", "docker"), 120)
    else:
        start = sh("enable and start Docker (no systemd)", START_DOCKER_SYSV, timeout=120)
    wait = sh(f"wait up to {DOCKER_WAIT}s for Docker to answer", WAIT_FOR_DOCKER, str(DOCKER_WAIT),
              timeout=DOCKER_WAIT + GRACE)
    return [*steps, start, wait]


def curl_steps(package_manager: str, t: Timeouts) -> list[Step]:
    """curl, which fleet asks each seat with, where the host lacks it."""
    if package_manager not in ("apt-get", "dnf", "yum"):
        raise UnsupportedOS("curl is missing and no apt-get, dnf or yum was found to install it; install curl")
    return [*_lock_wait("package manager lock", APT_LOCKS if package_manager == "apt-get" else RPM_LOCKS, t),
            sh("install curl (fleet asks each seat with it)", ENSURE_CURL, package_manager,
               timeout=max(t.lock, 0) + t.install)]


def _cloud_init_wait(t: Timeouts) -> list[Step]:
    if t.cloud_init <= 0:
        return []
    return [sh("wait for cloud-init to finish", WAIT_FOR_CLOUD_INIT, str(t.cloud_init),
               timeout=t.cloud_init + GRACE)]


def _lock_wait(label: str, paths: tuple[str, ...], t: Timeouts) -> list[Step]:
    if t.lock <= 0:
        return []
    return [sh(f"wait for the {label}", WAIT_FOR_LOCKS, label, str(t.lock), *paths, timeout=t.lock + GRACE)]


def _apt(title: str, *args: str, t: Timeouts, base: int) -> Run:
    """apt-get, never asking, and itself waiting for the dpkg lock as long as we did."""
    argv = ("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y",
            "-o", f"DPkg::Lock::Timeout={max(t.lock, 0)}", *args)
    return Run(title, argv, max(t.lock, 0) + base)


def _apt_official(distro: Distro, machine: str, t: Timeouts) -> list[Step]:
    """Docker's apt page, step by step (the repo line is uploaded, not echoed)."""
    # 32-bit Raspberry Pi OS runs a 64-bit kernel on newer boards: uname says
    # aarch64 while every package is armhf.
    arch = "armhf" if distro.repo_os == "raspbian" else deb_arch(machine)
    repo = apt_repo_line(distro, arch)
    return [
        _apt("update package lists", "update", t=t, base=300),
        _apt("install ca-certificates and curl", "install", "ca-certificates", "curl", t=t, base=t.install),
        Run(f"create {KEYRING_DIR}", ("install", "-m", "0755", "-d", KEYRING_DIR), 30),
        Run("download Docker's signing key",
            ("curl", "-fsSL", f"{DOWNLOAD}/{distro.repo_os}/gpg", "-o", KEYRING), 120),
        Run("make Docker's signing key readable", ("chmod", "a+r", KEYRING), 30),
        Upload(f"add Docker's apt repository ({distro.repo_os} {distro.codename})", APT_SOURCE,
               repo.encode(), mode=0o644),
        _apt("update package lists with Docker's repository", "update", t=t, base=300),
        _apt("install Docker from Docker's repository", "install", *CE_PACKAGES, t=t, base=t.install),
    ]


def _apt_distro(t: Timeouts) -> list[Step]:
    return [
        _apt("update package lists", "update", t=t, base=300),
        _apt("install Docker from the distribution (docker.io)", "install", "docker.io", t=t, base=t.install),
    ]


def _rpm_body(distro: Distro, source: str, t: Timeouts) -> list[Step]:
    if distro.family == "amazon":
        return _amazon(distro, source, t)
    return _rpm_official(distro, t) if source == "official" else _rpm_distro(distro, t)


def _rpm_official(distro: Distro, t: Timeouts) -> list[Step]:
    """Docker's repo file fetched into place: the same on yum, dnf 4 and dnf 5,
    whose config-manager syntaxes differ (``--add-repo`` vs ``addrepo``)."""
    tool = rpm_tool(distro)
    url = f"{DOWNLOAD}/{distro.repo_os}/docker-ce.repo"
    return [
        sh("make sure curl is installed", ENSURE_CURL, tool, timeout=t.install),
        Run(f"add Docker's {distro.repo_os} repository", ("curl", "-fsSL", "-o", YUM_REPO, url), 120),
        Run("install Docker from Docker's repository", (tool, "-y", "install", *CE_PACKAGES), t.install),
    ]


def _rpm_distro(distro: Distro, t: Timeouts) -> list[Step]:
    if distro.family == "fedora":
        return [Run("install Docker from Fedora (moby-engine)", ("dnf", "-y", "install", "moby-engine"), t.install)]
    if 0 < distro.major <= 7:
        return [Run(f"install Docker from {distro.pretty} (docker)", ("yum", "-y", "install", "docker"), t.install)]
    raise UnsupportedOS(
        f"{distro.pretty} has no Docker package of its own (it ships Podman); "
        "use `docker: {source: official}` to install Docker's"
    )


def _amazon(distro: Distro, source: str, t: Timeouts) -> list[Step]:
    """Amazon Linux has no Docker CE repository; its own ``docker`` package is
    the one AWS documents, so ``official`` falls back to it and says so."""
    tool = rpm_tool(distro)
    title = "install Docker from Amazon Linux (docker)"
    if source == "official":
        title += " — Docker publishes no repository for Amazon Linux, so its own package is used"
    return [Run(title, (tool, "-y", "install", "docker"), t.install)]
