"""State: what the fleet created and handed out, kept beside the inventory.

Written atomically (temp file, fsync, rename) with mode 0600 in a 0700
folder, because it holds every seat's credentials. Everything in it is also
labelled on the hosts, so status and teardown still work if it is lost.

A damaged file (cut short, not JSON, not UTF-8, the wrong shape) is never
guessed at: :func:`set_aside` renames it to ``NAME.json.damaged-TIME`` (kept for
a person to look at) and the fleet starts from an empty state, after which
provision reads each seat's credential back from its env file on the host
(fleet/recover.py), so students keep their passwords. A process killed while
saving leaves at most a ``.NAME.json.tmp-*`` file, never a half-written state.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
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

    read_only = False  # set when another command holds the fleet's lock: nothing is written

    @classmethod
    def load(cls, path: Path, fleet: str) -> State:
        try:
            data = _read(path)
        except FileNotFoundError:
            data = {}
        except OSError as e:
            raise InputError(f"cannot read the state file: {e.strerror or e}", file=str(path)) from None
        except Damaged as e:
            raise InputError(
                f"the state file is damaged ({e}); `fab provision` sets it aside and recovers the seats' "
                "credentials from the hosts",
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

    def adopt(self, host_id: str, container: str, secret: str) -> None:
        """Take a seat's credential as found on its host (the state had lost it or held another)."""
        with self.lock:
            self.data["secrets"].setdefault(host_id, {})[container] = secret

    def reissue(self, host_id: str, container: str, make: Callable[[], str]) -> None:
        """Give a seat a new credential on purpose (its roster student left; it goes to a new one).

        Recovery (fleet/recover.py) takes a running seat's credential back from
        its host when the state cannot explain it; a digest of the reissued one
        is kept so that recovery leaves it alone and the seat is replaced.
        """
        with self.lock:
            secret = make()
            self.data["secrets"].setdefault(host_id, {})[container] = secret
            self.data.setdefault("reissued", {}).setdefault(host_id, {})[container] = _digest(secret)

    def reissued(self, host_id: str, container: str) -> bool:
        """Was the seat's current credential given out on purpose, to win over the one on its host?"""
        with self.lock:
            current = self.data["secrets"].get(host_id, {}).get(container)
            return current is not None and self.data.get("reissued", {}).get(host_id, {}).get(container) == _digest(current)

    def forget_host(self, host_id: str) -> None:
        with self.lock:
            self.data["secrets"].pop(host_id, None)
            self.data.get("reissued", {}).pop(host_id, None)
            self.data.get("proxy_ca", {}).pop(host_id, None)
            self.data.get("sites", {}).pop(host_id, None)

    def set_proxy_ca(self, host_id: str, pem: str) -> None:
        """Keep the root certificate of a host's TLS proxy, for the handout (public, not a secret)."""
        with self.lock:
            cas = self.data.setdefault("proxy_ca", {})
            if cas.get(host_id) != pem:
                cas[host_id] = pem
                self.save()

    def set_site(self, host_id: str, address: str, tls: str, ca: str = "") -> None:
        """Keep where students reach a host (the address on its cards) and how its proxy's certificate came
        this run (acme: from the CA ``ca``, trusted; internal: the proxy's own; off), for the handout."""
        with self.lock:
            record = {"address": address, "tls": tls, **({"ca": ca} if ca else {})}
            sites = self.data.setdefault("sites", {})
            if sites.get(host_id) != record:
                sites[host_id] = record
                self.save()

    def site(self, host_id: str) -> dict[str, str]:
        """What :meth:`set_site` kept for the host ({} before its first provision)."""
        with self.lock:
            record = self.data.get("sites", {}).get(host_id)
            return dict(record) if isinstance(record, dict) else {}

    def save(self) -> None:
        if self.read_only:
            return
        with self.lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=_temp_prefix(self.path))  # mkstemp: mode 0600
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(self.data, f, indent=2, sort_keys=True)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


class Damaged(ValueError):
    """The state file exists but cannot be what fleet wrote."""


def _read(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise Damaged("not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise Damaged("empty" if not raw.strip() else f"not valid JSON: {e.msg}, line {e.lineno} column {e.colno}") from None
    if not isinstance(data, dict):
        raise Damaged(f"a JSON {type(data).__name__} where an object was expected")
    for key in ("host_keys", "secrets"):
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise Damaged(f"{key!r} is not an object")
    for host, seats in data.get("secrets", {}).items():
        if not isinstance(seats, dict) or not all(isinstance(v, str) for v in seats.values()):
            raise Damaged(f"the credentials of {host} are not text")
    if not all(isinstance(v, str) and " " in v for v in data.get("host_keys", {}).values()):
        raise Damaged("a pinned host key is not `type base64`")
    return data


def set_aside(path: Path) -> str | None:
    """If the state file is damaged, rename it out of the way and say so (one line); else None.

    Also removes temp files a killed process left while saving. Call it only
    while holding the fleet's lock (fleet/lock.py).
    """
    for tmp in path.parent.glob(_temp_prefix(path) + "*"):  # this fleet's only: others may share the folder
        tmp.unlink(missing_ok=True)
    try:
        _read(path)
        return None
    except (FileNotFoundError, IsADirectoryError):
        return None
    except Damaged as e:
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, aside)
        return (f"the state file {path} was damaged ({e}); kept it as {aside.name} and started afresh: "
                "host keys are trusted again on first contact, and each seat's credential is read back "
                "from its host, so students keep their passwords")
