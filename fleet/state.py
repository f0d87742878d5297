"""State: what the fleet created and handed out, kept beside the inventory.

Written atomically (temp file, fsync, rename) with mode 0600 in a 0700
folder, because it holds every seat's credentials. Everything in it is also
labelled on the hosts, so status and teardown still work if it is lost.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from fleet.errors import InputError

VERSION = 1


def path_for(inventory_path: Path, name: str) -> Path:
    """``.fleet/NAME.json`` beside the inventory (FLEET_STATE_DIR overrides the folder)."""
    folder = Path(os.environ.get("FLEET_STATE_DIR") or inventory_path.parent / ".fleet")
    return folder / f"{name}.json"


class State:
    """The state file's content, safe to update from the fan-out's threads."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data
        self.lock = threading.RLock()

    @classmethod
    def load(cls, path: Path, fleet: str) -> State:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            data = {}
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(
                f"the state file is damaged ({e}); move it aside and run again: seats are found again by their "
                "labels on the hosts, but their passwords change",
                file=str(path),
            ) from None
        if data and (data.get("version") != VERSION or data.get("fleet") != fleet):
            raise InputError(f"this state file belongs to fleet {data.get('fleet')!r}, not {fleet!r}", file=str(path))
        data.setdefault("version", VERSION)
        data.setdefault("fleet", fleet)
        data.setdefault("host_keys", {})
        data.setdefault("secrets", {})
        return cls(path, data)

    def secret(self, host_id: str, container: str, make: callable) -> str:
        """The seat's credential, generated on first use and kept from then on."""
        with self.lock:
            seats = self.data["secrets"].setdefault(host_id, {})
            if container not in seats:
                seats[container] = make()
            return seats[container]

    def forget_host(self, host_id: str) -> None:
        with self.lock:
            self.data["secrets"].pop(host_id, None)

    def save(self) -> None:
        with self.lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-")  # mkstemp: mode 0600
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(self.data, f, indent=2, sort_keys=True)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
