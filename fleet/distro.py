"""Which Linux a host runs, read from its os-release file.

os-release(5) is the one file every distribution we support ships, so it is
the only thing detection reads: no ``lsb_release``, no ``/etc/*-release``
guessing. The answer names the *family* (which package manager and which
kind of Docker repository) and the name of Docker's repository for it,
because the two differ: Rocky Linux is a RHEL-family system but Docker tells
its users to take the CentOS repository.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from fleet.errors import UnsupportedOS

SUPPORTED = (
    "Debian, Ubuntu and their derivatives (Linux Mint, Pop!_OS, Raspberry Pi OS), "
    "RHEL, CentOS 7, CentOS Stream, Rocky Linux, AlmaLinux, Oracle Linux, Fedora, "
    "Amazon Linux 2 and 2023"
)

# ID -> (family, Docker repository name). None: Docker publishes no repository.
# Rocky, Alma and Oracle take Docker's CentOS repository, as Docker's docs say
# for RHEL rebuilds; only RHEL itself has one of its own.
KNOWN_IDS: dict[str, tuple[str, str | None]] = {
    "debian": ("debian", "debian"),
    "ubuntu": ("debian", "ubuntu"),
    # 32-bit Raspberry Pi OS; the 64-bit one calls itself ``debian``.
    "raspbian": ("debian", "raspbian"),
    "rhel": ("rhel", "rhel"),
    "centos": ("rhel", "centos"),
    "rocky": ("rhel", "centos"),
    "almalinux": ("rhel", "centos"),
    "ol": ("rhel", "centos"),
    "fedora": ("fedora", "fedora"),
    "amzn": ("amazon", None),
}

# What an unknown ID inherits through ID_LIKE. A derivative of RHEL is sent to
# Docker's CentOS repository (the RHEL one is built for RHEL only).
KNOWN_LIKES: dict[str, tuple[str, str | None]] = {
    "ubuntu": ("debian", "ubuntu"),
    "debian": ("debian", "debian"),
    "rhel": ("rhel", "centos"),
    "centos": ("rhel", "centos"),
    "fedora": ("fedora", "fedora"),
}

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOUBLE_QUOTE_ESCAPES = '$"\\`'


@dataclass(frozen=True)
class Distro:
    """A detected distribution.

    ``codename`` is the release name Docker's apt repository is indexed by: for
    Ubuntu derivatives that is the Ubuntu one (Linux Mint 21 → ``jammy``, not
    ``victoria``), as Docker's docs read ``${UBUNTU_CODENAME:-$VERSION_CODENAME}``.
    ``repo_os`` is the ``download.docker.com/linux/<repo_os>`` directory, or
    None where Docker publishes nothing (Amazon Linux).
    """

    id: str
    version: str
    codename: str
    family: str
    pretty: str
    repo_os: str | None = None

    @property
    def major(self) -> int:
        """Leading number of VERSION_ID (``9.3`` → 9, ``2023`` → 2023); 0 if there is none."""
        digits = re.match(r"\d+", self.version)
        return int(digits.group()) if digits else 0


def parse_os_release(text: str) -> dict[str, str]:
    """Read os-release(5): ``KEY=value`` lines, shell-style quoting, ``#`` comments.

    Lines that are not assignments are skipped rather than refused: a host with
    one odd line should still be identified by the lines around it.
    """
    result: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, eq, raw = line.partition("=")
        if eq and _KEY.fullmatch(key):
            result[key] = _unquote(raw)
    return result


def _unquote(raw: str) -> str:
    """One shell word: "…" honours the \\$ \\" \\\\ \\` escapes, '…' is literal,
    a bare backslash quotes the next character; unquoted space ends the value."""
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == '"':
            i += 1
            while i < n and raw[i] != '"':
                if raw[i] == "\\" and i + 1 < n and raw[i + 1] in _DOUBLE_QUOTE_ESCAPES:
                    i += 1
                out.append(raw[i])
                i += 1
        elif c == "'":
            end = raw.find("'", i + 1)
            end = n if end < 0 else end
            out.append(raw[i + 1:end])
            i = end
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(raw[i])
        elif c.isspace():
            break
        else:
            out.append(c)
        i += 1
    return "".join(out)


def detect(os_release: dict[str, str]) -> Distro:
    """Decide from ID, then from each ID_LIKE entry in order; refuse anything else."""
    os_id = os_release.get("ID", "linux").lower()
    pretty = os_release.get("PRETTY_NAME") or os_release.get("NAME") or "Linux"
    known = KNOWN_IDS.get(os_id) or _from_likes(os_release)
    if known is None:
        raise UnsupportedOS(f"{pretty} (ID={os_id}) is not supported; supported: {SUPPORTED}")
    family, repo_os = known
    return Distro(
        id=os_id,
        version=os_release.get("VERSION_ID", ""),
        codename=_codename(os_release, family),
        family=family,
        pretty=pretty,
        repo_os=repo_os,
    )


def _from_likes(os_release: dict[str, str]) -> tuple[str, str | None] | None:
    """First known ID_LIKE entry. An EL rebuild that only says ``fedora`` is
    recognised by its ``platform:elN`` PLATFORM_ID, so it is not sent to
    Docker's Fedora repository (whose $releasever would be 8 or 9)."""
    for like in os_release.get("ID_LIKE", "").lower().split():
        if like == "fedora" and os_release.get("PLATFORM_ID", "").startswith("platform:el"):
            return KNOWN_LIKES["rhel"]
        if like in KNOWN_LIKES:
            return KNOWN_LIKES[like]
    return None


def _codename(os_release: dict[str, str], family: str) -> str:
    """The upstream codename for apt repositories; plain VERSION_CODENAME elsewhere."""
    if family == "debian":
        for key in ("UBUNTU_CODENAME", "DEBIAN_CODENAME", "VERSION_CODENAME"):
            if os_release.get(key):
                return os_release[key]
    return os_release.get("VERSION_CODENAME", "")
