"""What a plan is made of: small, inert descriptions of remote work.

A Step holds argv lists and file contents, never a shell string: the SSH layer
is the one place that quotes (``shlex.join``). Steps run as root on the host
(through sudo when the login user is not root). Uploads carry secrets, so their
content never appears in ``describe()``.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Run:
    """Run one command as root on the host."""

    title: str
    argv: tuple[str, ...]
    timeout: int = 120

    def describe(self) -> dict:
        return {"do": self.title, "run": list(self.argv), "timeout": self.timeout}


@dataclass(frozen=True)
class Upload:
    """Write a file as root with the given mode; the content stays out of plans and logs."""

    title: str
    path: str
    content: bytes = field(repr=False)
    mode: int = 0o600
    timeout: int = 60

    def describe(self) -> dict:
        return {
            "do": self.title,
            "upload": self.path,
            "mode": f"{self.mode:04o}",
            "content": f"<{len(self.content)} bytes, not shown>",
        }


@dataclass(frozen=True)
class PushImage:
    """Stream an image from the controller's Docker into the host's (docker save | docker load)."""

    title: str
    image: str
    timeout: int = 1800

    def describe(self) -> dict:
        return {"do": self.title, "push": self.image, "timeout": self.timeout}


@dataclass(frozen=True)
class SendFiles:
    """Bring a folder of the host in line with a folder of this computer (fleet/filesync.py carries it out):
    the files in ``send`` go as one tar stream on stdin, those in ``remove`` are deleted, and the host's
    manifest of the folder becomes ``manifest``. Paths are relative to both folders."""

    title: str
    source: str  # the folder on this computer
    folder: str  # the folder on the host
    manifest_path: str  # where the host keeps the manifest of what it has
    manifest: bytes = field(repr=False)
    send: tuple[tuple[str, int], ...] = ()  # (relative path, size) of the new and changed files
    remove: tuple[str, ...] = ()
    timeout: int = 1800

    @property
    def size(self) -> int:
        return sum(n for _, n in self.send)

    def describe(self) -> dict:
        return {"do": self.title, "send": self.folder, "from": self.source, "files": [p for p, _ in self.send],
                "bytes": self.size, "remove": list(self.remove), "timeout": self.timeout}


Step = Run | Upload | PushImage | SendFiles


def sh(title: str, script: str, *args: str, timeout: int = 120) -> Run:
    """A Run of a fixed shell script; variable values travel as positional
    arguments ($1, $2, ...) so they are never parsed as shell code."""
    return Run(title, ("sh", "-c", script, "sh", *args), timeout)
