"""Course data: a folder of this computer, on every host once, read-only in every seat.

``data: {src: ./datasets, mount: /home/jovyan/data}`` (fleet-wide, or a
service's own, which wins for that service) names a folder beside the
inventory. Each host keeps one copy per folder at
``/var/lib/fleet/FLEET/data/KEY`` (KEY: ``fleet`` for the fleet-wide data,
else the service's name), owned by root and readable by all, with a
manifest beside it (``KEY.manifest``: every file's SHA-256 and size as
fleet last wrote them; beside the folder, so students never see it). The
fact probe reads the manifests; the plan compares them with this computer's
and sends only the new and changed files and removes the ones that went
away (a :class:`~fleet.steps.SendFiles` step, carried out by
fleet/filesync.py and relayed host to host like an image by fleet/relay.py:
the hosts needing the same stream read it from each other, so it leaves this
computer once); when nothing changed, there is no step.

Every seat mounts its folder read-only (``--volume FOLDER:MOUNT:ro``), so a
student cannot write it, even as root in the container. The mount is part of
the seat's ``docker run`` argv, so adding or moving ``data:`` replaces the
seats once (their work volumes keep the students' files), while a change of
the files' content replaces nothing: the spec depends on where the data is
mounted, never on what it holds.

Pure, but for nothing: plain data in, steps out.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fleet.filesync import Manifest
from fleet.inventory import Inventory, Service
from fleet.inventory.services import FLEET_DATA, DataSettings, data_folder
from fleet.steps import Run, SendFiles, Step

SUFFIX = ".manifest"


@dataclass(frozen=True)
class Dataset:
    """One folder of course data, as this computer has it and where the hosts keep it."""

    key: str  # FLEET_DATA for the fleet-wide data, else the service's name
    src: str  # as the inventory writes it
    source: Path  # on this computer
    field: str  # where the inventory names it, for errors: data.src or services[i].data.src


def root(fleet: str) -> str:
    """Everything course data keeps on a host (teardown removes it)."""
    return f"/var/lib/fleet/{fleet}"


def host_folder(fleet: str, key: str) -> str:
    return f"{root(fleet)}/data/{key}"


def manifest_path(fleet: str, key: str) -> str:
    return f"{root(fleet)}/data/{key}{SUFFIX}"


def settings_of(inventory: Inventory, svc: Service) -> tuple[str, DataSettings] | None:
    """The course data a service's seats mount: (key, settings), or None."""
    if svc.data is not None:
        return svc.name, svc.data
    if inventory.model.data is not None:
        return FLEET_DATA, inventory.model.data
    return None


def mount_of(inventory: Inventory, svc: Service) -> tuple[str, str] | None:
    """(the host's folder, where it is mounted in the seat) for a service's seats, or None."""
    found = settings_of(inventory, svc)
    if found is None:
        return None
    mount = svc.data_mount(found[1])
    return (host_folder(inventory.name, found[0]), mount) if mount else None


def inside_work(inventory: Inventory, svc: Service) -> str | None:
    """The data's mount relative to the seat's work folder, when it is inside it (collect and move leave it
    out: it is the teacher's, not the student's); None otherwise."""
    found = mount_of(inventory, svc)
    work = (svc.work_dir or "").rstrip("/")
    if found is None or not work or not found[1].startswith(work + "/"):
        return None
    return found[1][len(work) + 1:]


def datasets(inventory: Inventory) -> list[Dataset]:
    """Every folder of course data some service's seats mount, each once."""
    out: dict[str, Dataset] = {}
    base = inventory.path.parent
    for i, svc in enumerate(inventory.services):
        found = settings_of(inventory, svc)
        if found is None or found[0] in out:
            continue
        key, data = found
        field = f"services[{i}].data.src" if svc.data is not None else "data.src"
        out[key] = Dataset(key, data.src, data_folder(base, data), field)
    return list(out.values())


# --- manifests ------------------------------------------------------------------------


def manifest_bytes(files: Manifest) -> bytes:
    """The manifest as the host keeps it: one line of JSON, the same bytes for the same files."""
    body = {"files": {path: [digest, size] for path, (digest, size) in sorted(files.items())}}
    return (json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n").encode()  # ASCII: one line whatever the names


def parse_manifest(text: str) -> Manifest | None:
    """A host's manifest; None when it is not one fleet wrote (then every file is sent again)."""
    try:
        files = json.loads(text)["files"]
        return {str(path): (str(digest), int(size)) for path, (digest, size) in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def changes(local: Manifest, remote: Manifest) -> tuple[list[tuple[str, int]], list[str]]:
    """(the files to send, with their sizes; the files to remove) to make ``remote`` hold ``local``."""
    send = [(path, size) for path, (digest, size) in sorted(local.items()) if remote.get(path) != (digest, size)]
    remove = sorted(path for path in remote if path not in local)
    return send, remove


def human(size: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return ""


def sync_steps(inventory: Inventory, on_host: dict[str, str], local: dict[str, Manifest]) -> list[Step]:
    """What each folder of course data needs on one host: nothing when its manifest matches this computer's,
    else one step sending the new and changed files and removing the others.

    ``on_host``: key → the host's manifest as the probe read it; ``local``: key → this computer's files.
    """
    steps: list[Step] = []
    for ds in datasets(inventory):
        files = local.get(ds.key, {})
        have_text = on_host.get(ds.key)
        have = parse_manifest(have_text) if have_text is not None else None
        send, remove = changes(files, have or {})
        if have is not None and not send and not remove:
            continue
        folder = host_folder(inventory.name, ds.key)
        what = (f"{len(send)} new or changed file{'s' * (len(send) != 1)} ({human(sum(n for _, n in send))})"
                if have is not None else f"{len(send)} file{'s' * (len(send) != 1)} ({human(sum(n for _, n in send))})")
        if remove:
            what += f", {len(remove)} removed"
        steps.append(SendFiles(f"send course data {ds.src} to {folder}: {what}", str(ds.source), folder,
                               manifest_path(inventory.name, ds.key), manifest_bytes(files), tuple(send),
                               tuple(remove), inventory.timeouts.push))
    return steps


def unused_steps(inventory: Inventory, on_host: dict[str, str]) -> list[Step]:
    """Folders of course data the inventory no longer names (after their seats were replaced without them)."""
    wanted = {ds.key for ds in datasets(inventory)}
    gone = sorted(k for k in on_host if k not in wanted)
    if not gone:
        return []
    paths = [p for k in gone for p in (host_folder(inventory.name, k), manifest_path(inventory.name, k))]
    return [Run(f"remove course data no longer in the inventory ({', '.join(gone)})", ("rm", "-rf", "--", *paths),
                inventory.timeouts.command)]
