"""A folder of this computer kept in line with a folder of a host: its files hashed here, the changed ones sent.

The edge under course data (fleet/coursedata.py decides what to send):
:func:`scan` reads the local folder once per command (SHA-256 and size of
every regular file); :func:`chunks` streams the files a
:class:`~fleet.steps.SendFiles` step names as one tar stream, read from
disk as it goes (never a whole file in memory), after the new manifest;
:data:`SYNC` is the host's side: it takes the manifest, removes the files
that went away, unpacks the stream into the folder as root (files 0644,
folders 0755: readable by every seat's user, writable by none) and only
then puts the new manifest in place, so a transfer cut short is sent again
by the next run.
"""
from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from fleet.errors import HostError, InputError
from fleet.steps import SendFiles

Manifest = dict[str, tuple[str, int]]  # relative path → (SHA-256 hex, size in bytes)
CHUNK = 1 << 16
BLOCK = 512

# $1 the host's folder, $2 its manifest, $3 the manifest's length, $4 "tar" when a tar stream follows it,
# then the relative paths to remove. stdin: the manifest, then the tar stream.
SYNC = r"""
set -eu
dir=$1 manifest=$2 len=$3 tar=$4
shift 4
umask 022
mkdir -p "$dir"
chmod 755 "$dir"
head -c "$len" > "$manifest.tmp"
[ "$(wc -c < "$manifest.tmp")" -eq "$len" ] || { echo "the manifest arrived cut short" >&2; exit 1; }
if [ $# -gt 0 ]; then
  for f; do
    case "/$f/" in */../*|*/./*|//*) continue ;; esac
    rm -f -- "$dir/$f"
  done
  find "$dir" -mindepth 1 -depth -type d -empty -delete
fi
if [ "$tar" = tar ]; then
  tar -x -f - -C "$dir" --no-same-owner
fi
chmod 644 "$manifest.tmp"
mv -f "$manifest.tmp" "$manifest"
"""


def argv(step: SendFiles) -> tuple[str, ...]:
    """The host's side of ``step``: the fixed script, with paths and the names to remove as its arguments."""
    return ("sh", "-c", SYNC, "sh", step.folder, step.manifest_path, str(len(step.manifest)),
            "tar" if step.send else "", *step.remove)


def scan(root: Path, *, file: str = "", field: str = "") -> Manifest:
    """Every regular file under ``root`` (symbolic links and special files left out) with its SHA-256 and size.

    InputError (naming the inventory's ``file`` and ``field``) for a folder that cannot be read or a name
    that cannot travel: not UTF-8, or holding a control character.
    """
    out: Manifest = {}
    try:
        walk = sorted(os.walk(root, onerror=_raise))
    except OSError as e:
        raise InputError(f"cannot read course data {e.filename or root}: {e.strerror or e}", file=file,
                         field=field) from None
    for folder, _dirs, names in walk:
        for name in sorted(names):
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                raise InputError(f"course data file {os.fsdecode(path)!r} has a name that is not UTF-8; rename it",
                                 file=file, field=field) from None
            if any(unicodedata.category(c) == "Cc" for c in rel):
                raise InputError(f"course data file {rel!r} has a control character in its name; rename it",
                                 file=file, field=field)
            try:
                info = path.lstat()
                if not stat.S_ISREG(info.st_mode):
                    continue
                out[rel] = _hash(path)
            except OSError as e:
                raise InputError(f"cannot read course data file {path}: {e.strerror or e}", file=file,
                                 field=field) from None
    return out


def _raise(e: OSError) -> None:
    raise e


def _hash(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def chunks(step: SendFiles) -> Iterator[bytes]:
    """The step's stdin: the manifest, then (when files are sent) a tar stream of them, each read as it goes.

    Every member is a regular file owned by root, mode 0644; folders are made by tar on the host. A file
    whose size changed since it was hashed stops the transfer (HostError): the manifest would not match.
    """
    yield step.manifest
    if not step.send:
        return
    root = Path(step.source)
    now = int(time.time())
    for rel, size in step.send:
        info = tarfile.TarInfo(rel)
        info.size, info.mode, info.mtime, info.type = size, 0o644, now, tarfile.REGTYPE
        yield info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")
        left = size
        try:
            with (root / rel).open("rb") as f:
                while left > 0:
                    data = f.read(min(CHUNK, left))
                    if not data:
                        break
                    left -= len(data)
                    yield data
                if left or f.read(1):
                    raise HostError(f"course data file {root / rel} changed while it was sent; run again")
        except OSError as e:
            raise HostError(f"cannot read course data file {root / rel}: {e.strerror or e}") from None
        yield b"\0" * (-size % BLOCK)
    yield b"\0" * (2 * BLOCK)
