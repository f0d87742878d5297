"""A local, stateful DigitalOcean API v2 for the tests, held to DigitalOcean's specification.

It serves on 127.0.0.1 (a random port) the endpoints fleet uses: account,
account/keys, sizes, regions, droplets (create one or many, list by tag or
name with pages, get, delete by id and by tag). Everything it does is what
the real service documents:

- Every request is validated against the specification before it is
  served (openapi-core, see contract.py); a violation is answered 422 (401
  for missing authentication), as the real API would refuse it, and
  recorded in ``violations``. Every answer is validated before it is sent;
  a violation there is a bug of the stand-in and is recorded too. Tests
  assert ``violations == []``.
- A droplet is a real test host container (machines.py) started in the
  background; the droplet answers ``status: new`` with no networks until the
  machine has booted and ``active_delay`` seconds have passed, then
  ``active`` with its container's address as the ``public`` v4 network.
- A deleted droplet stays listed until its container is removed (and
  ``destroy_delay`` has passed), then answers 404.
- Rate limits per token: ``ratelimit-*`` headers on every answer, 429 with
  ``retry-after`` past 250 requests a minute, and 10 a minute on
  GET /v2/account/keys, as DigitalOcean documents.

Faults on demand: :meth:`StandIn.inject` (429 with retry-after, 5xx, a lost
answer after the work was done, a hang), ``delay`` (a slow network for every
answer), ``never_active`` and ``no_ssh`` (droplet names that never become
active, or whose SSH never answers), ``on_create`` (called once a create
answer has been written, e.g. to kill the client right then).
"""
from __future__ import annotations

import base64
import itertools
import json
import logging
import math
import re
import secrets
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import paramiko
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.standin import catalog
from tests.standin.contract import ApiRequest, ApiResponse, Contract, normalise
from tests.standin.machines import Machines

log = logging.getLogger("standin")
MAX_PER_PAGE = 200
MAX_NAMES = 10


@dataclass
class Fault:
    """Answer matching requests with ``status`` instead of serving them (or after serving them).

    ``times`` requests are hit, every ``every``-th matching one. ``after``:
    do the work, then answer with the fault (the answer is lost; the change
    happened). ``hang``: wait this long before answering (status 0: then
    answer normally).
    """

    status: int
    times: int = 1
    method: str | None = None
    path: str | None = None
    every: int = 1
    retry_after: int | None = 1
    after: bool = False
    hang: float = 0.0
    matched: int = 0
    hits: int = 0

    def take(self, method: str, path: str) -> bool:
        if self.hits >= self.times or (self.method and self.method != method) or (self.path and self.path != path):
            return False
        self.matched += 1
        if self.matched % self.every:
            return False
        self.hits += 1
        return True


@dataclass
class Droplet:
    id: int
    name: str
    region: str
    size: str
    image: str
    tags: list[str]
    keys: list[str]
    container: str
    created: float
    created_at: str
    never_active: bool = False
    no_ssh: bool = False
    address: str | None = None
    boot_error: str | None = None
    user_data: str | None = None  # what cloud-init would run at first boot, as the create request sent it
    deleted: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


@dataclass
class Answer:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    created: list[Droplet] = field(default_factory=list)


class StandIn:
    """The stand-in service; ``with StandIn(label=...) as api:`` starts it and cleans everything up."""

    def __init__(self, *, label: str, active_delay: float = 2.0, destroy_delay: float = 1.0,
                 per_minute: int = 250, per_hour: int = 5000, keys_per_minute: int = 10,
                 droplet_limit: int = 25, boot_timeout: float = 180):
        self.label = label
        self.token = f"standin-{secrets.token_hex(16)}"
        self.active_delay, self.destroy_delay = active_delay, destroy_delay
        self.per_minute, self.per_hour, self.keys_per_minute = per_minute, per_hour, keys_per_minute
        self.droplet_limit = droplet_limit
        self.machines = Machines(label, boot_timeout=boot_timeout)
        self.contract = Contract()
        self.lock = threading.RLock()
        self._droplets: dict[int, Droplet] = {}
        self._keys: dict[int, dict[str, Any]] = {}
        self._tags: set[str] = set()
        self._ids = itertools.count(310_000_000 + secrets.randbelow(1_000_000))
        self._recent: deque[float] = deque()
        self._recent_keys: deque[float] = deque()
        self._hour: deque[float] = deque()
        self.faults: list[Fault] = []
        self.delay = 0.0
        self.never_active: set[str] = set()
        self.no_ssh: set[str] = set()
        self.on_create: Callable[[list[Droplet]], None] | None = None
        self.violations: list[str] = []
        self.errors: list[str] = []
        self.journal: list[tuple[str, str, int]] = []
        self.counts: Counter[str] = Counter()
        self._server = make_server("127.0.0.1", 0, self, threaded=True)
        self._thread: threading.Thread | None = None
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v2/"

    def env(self) -> dict[str, str]:
        """The environment that points python-digitalocean (and fleet) here."""
        return {"DIGITALOCEAN_END_POINT": self.url, "DIGITALOCEAN_ACCESS_TOKEN": self.token}

    def start(self) -> StandIn:
        self._thread = threading.Thread(target=self._server.serve_forever, name="standin", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, delete every droplet (their containers go) and remove anything left with the label."""
        self._server.shutdown()
        with self.lock:
            droplets = list(self._droplets.values())
        for d in droplets:
            d.deleted.set()
        for d in droplets:
            if d.thread is not None:
                d.thread.join(timeout=self.machines.boot_timeout + 60)
        self.machines.remove_all()

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what tests look at and change ----------------------------------------------------

    def inject(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()
            self.delay = 0.0
            self.never_active.clear()
            self.no_ssh.clear()
            self.on_create = None

    def droplets(self, tag: str | None = None) -> list[dict[str, Any]]:
        """Droplets that exist (deleted ones whose machine is not gone yet included), as the API shows them."""
        with self.lock:
            live = [d for d in self._droplets.values() if tag is None or tag in d.tags]
            return [self._droplet_json(d) for d in sorted(live, key=lambda d: d.id)]

    def user_data(self, droplet_id: int) -> str | None:
        """The user_data the droplet was created with (the API never shows it again; the stand-in keeps it)."""
        with self.lock:
            d = self._droplets.get(int(droplet_id))
            return d.user_data if d else None

    def containers(self) -> list[str]:
        return self.machines.containers()

    def keys(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self._keys.values())

    # --- WSGI ------------------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        request = Request(environ)
        try:
            response = self._serve(request)
        except Exception as e:  # a bug of the stand-in: loud, and a 500 the client may retry
            log.exception("stand-in failed")
            self.violations.append(f"stand-in bug on {request.method} {request.path}: {type(e).__name__}: {e}")
            response = Response(json.dumps({"id": "server_error", "message": "stand-in bug"}), 500,
                                content_type="application/json")
        return response(environ, start_response)

    def _serve(self, request: Request) -> Response:
        if self.delay:
            time.sleep(self.delay)
        path, method = normalise(request.path), request.method.upper()
        api_request = ApiRequest(method, path, list(request.args.items(multi=True)), dict(request.headers),
                                 request.get_data() or None, request.mimetype or "application/octet-stream")
        fault = self._fault(method, path)
        if fault is not None and fault.hang:
            time.sleep(fault.hang)
        answer = self._limited(method, path)
        if answer is None and fault is not None and fault.status and not fault.after:
            answer = self._fault_answer(fault)
        if answer is None:
            answer = self._checked(api_request, request)
            if fault is not None and fault.status and fault.after:
                answer = self._fault_answer(fault)
        response = self._respond(answer, api_request)
        self.journal.append((method, request.full_path.rstrip("?"), answer.status))
        if answer.created and answer.status < 300 and self.on_create is not None:
            hook, created = self.on_create, list(answer.created)
            response.call_on_close(lambda: hook(created))
        return response

    def _checked(self, api_request: ApiRequest, request: Request) -> Answer:
        """Validate the request against the specification, then serve it."""
        errors, unauthenticated = self.contract.request_errors(api_request)
        if errors:
            self.violations.append(f"request {api_request.method.upper()} {api_request.path}: " + "; ".join(errors))
            if unauthenticated:
                return _error(401, "unauthorized", "Unable to authenticate you")
            return _error(422, "unprocessable_entity", "; ".join(errors)[:500])
        if request.headers.get("Authorization", "") != f"Bearer {self.token}":
            return _error(401, "unauthorized", "Unable to authenticate you")
        return self._route(api_request.method.upper(), api_request.path, request)

    def _respond(self, answer: Answer, api_request: ApiRequest) -> Response:
        data = b"" if answer.status == 204 else json.dumps(answer.body or {}).encode()
        headers = {**self._rate_headers(), "x-request-id": str(uuid.uuid4()), **answer.headers}
        response = Response(data, answer.status, headers=headers, content_type="application/json")
        errors = self.contract.response_errors(
            api_request, ApiResponse(answer.status, data, {k.lower(): v for k, v in response.headers.items()}))
        if errors:
            self.violations.append(f"answer {answer.status} to {api_request.method.upper()} {api_request.path}: "
                                   + "; ".join(errors))
        return response

    # --- rate limits and faults ---------------------------------------------------------------

    def _limited(self, method: str, path: str) -> Answer | None:
        now = time.time()
        with self.lock:
            for window, span in ((self._recent, 60), (self._recent_keys, 60), (self._hour, 3600)):
                while window and window[0] <= now - span:
                    window.popleft()
            self._hour.append(now)
            self._recent.append(now)
            keys = method == "GET" and path == "/v2/account/keys"
            if keys:
                self._recent_keys.append(now)
            limits = [(self._recent, self.per_minute)] + ([(self._recent_keys, self.keys_per_minute)] if keys else [])
            for window, limit in limits:
                if len(window) > limit:
                    wait = max(1, math.ceil(window[-limit - 1] + 60 - now))
                    self.counts["rate_limited"] += 1
                    return _error(429, "too_many_requests", "API Rate limit exceeded.", {"retry-after": str(wait)})
        return None

    def _rate_headers(self) -> dict[str, str]:
        with self.lock:
            first = self._hour[0] if self._hour else time.time()
            return {"ratelimit-limit": str(self.per_hour),
                    "ratelimit-remaining": str(max(0, self.per_hour - len(self._hour))),
                    "ratelimit-reset": str(int(first + 3600))}

    def _fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.take(method, path):
                    self.counts[f"fault_{fault.status or 'hang'}"] += 1
                    return fault
        return None

    @staticmethod
    def _fault_answer(fault: Fault) -> Answer:
        if fault.status == 429:
            headers = {"ratelimit-reset": str(int(time.time()) + (fault.retry_after or 2))}
            if fault.retry_after is not None:
                headers["retry-after"] = str(fault.retry_after)
            return _error(429, "too_many_requests", "API Rate limit exceeded.", headers)
        return _error(fault.status, "server_error", "Unexpected server-side error")

    # --- the endpoints ------------------------------------------------------------------------

    def _route(self, method: str, path: str, request: Request) -> Answer:
        routes: list[tuple[str, str, Callable[..., Answer]]] = [
            ("GET", r"/v2/account", self._account),
            ("GET", r"/v2/account/keys", self._keys_list),
            ("POST", r"/v2/account/keys", self._keys_create),
            ("GET", r"/v2/account/keys/(?P<key>[^/]+)", self._key_get),
            ("DELETE", r"/v2/account/keys/(?P<key>[^/]+)", self._key_delete),
            ("GET", r"/v2/sizes", self._sizes),
            ("GET", r"/v2/regions", self._regions),
            ("GET", r"/v2/droplets", self._droplets_list),
            ("POST", r"/v2/droplets", self._droplets_create),
            ("DELETE", r"/v2/droplets", self._droplets_delete_by_tag),
            ("GET", r"/v2/droplets/(?P<id>\d+)", self._droplet_get),
            ("DELETE", r"/v2/droplets/(?P<id>\d+)", self._droplet_delete),
        ]
        for verb, pattern, handler in routes:
            m = re.fullmatch(pattern, path)
            if m and verb == method:
                return handler(request, **m.groupdict())
        self.errors.append(f"not implemented by the stand-in: {method} {path}")
        return _error(404, "not_found", "The resource you were accessing could not be found.")

    def _account(self, request: Request) -> Answer:
        return Answer(200, {"account": {
            "droplet_limit": self.droplet_limit, "floating_ip_limit": 3, "email": "teacher@example.org",
            "uuid": "b6fr89dbf6d9156cace5f3c78dc9851d957381ef", "email_verified": True, "status": "active",
            "status_message": "", "name": "Stand-in Teacher"}})

    # keys

    def _keys_list(self, request: Request) -> Answer:
        with self.lock:
            return self._page(request, "ssh_keys", list(self._keys.values()))

    def _keys_create(self, request: Request) -> Answer:
        data = request.get_json(force=True)
        try:
            fp = _fingerprint(data["public_key"])
        except ValueError:
            return _error(422, "unprocessable_entity", "Key invalid, key should be of the form `type key [comment]`")
        with self.lock:
            if any(k["fingerprint"] == fp for k in self._keys.values()):
                return _error(422, "unprocessable_entity", "SSH Key is already in use on your account")
            key = {"id": next(self._ids), "fingerprint": fp, "public_key": data["public_key"].strip(),
                   "name": data["name"]}
            self._keys[key["id"]] = key
            self.counts["keys_created"] += 1
        return Answer(201, {"ssh_key": key})

    def _find_key(self, ident: str) -> dict[str, Any] | None:
        with self.lock:
            for k in self._keys.values():
                if str(k["id"]) == ident or k["fingerprint"] == ident:
                    return k
        return None

    def _key_get(self, request: Request, key: str) -> Answer:
        found = self._find_key(key)
        return Answer(200, {"ssh_key": found}) if found else _not_found()

    def _key_delete(self, request: Request, key: str) -> Answer:
        found = self._find_key(key)
        if not found:
            return _not_found()
        with self.lock:
            self._keys.pop(found["id"], None)
            self.counts["keys_deleted"] += 1
        return Answer(204)

    # catalog

    def _sizes(self, request: Request) -> Answer:
        return self._page(request, "sizes", [catalog.size_json(s) for s in catalog.SIZES])

    def _regions(self, request: Request) -> Answer:
        return self._page(request, "regions", [catalog.region_json(r) for r in catalog.REGIONS])

    # droplets

    def _droplets_list(self, request: Request) -> Answer:
        tag, name = request.args.get("tag_name"), request.args.get("name")
        with self.lock:
            found = [self._droplet_json(d) for d in sorted(self._droplets.values(), key=lambda d: d.id)
                     if (tag is None or tag in d.tags) and (name is None or d.name == name)]
        return self._page(request, "droplets", found)

    def _droplet_get(self, request: Request, id: str) -> Answer:  # noqa: A002 (the path's name)
        with self.lock:
            d = self._droplets.get(int(id))
            return Answer(200, {"droplet": self._droplet_json(d)}) if d else _not_found()

    def _droplets_create(self, request: Request) -> Answer:
        data = request.get_json(force=True)
        names = data.get("names") or [data.get("name")]
        problem = self._refuse_create(data, names)
        if problem:
            return _error(422, "unprocessable_entity", problem)
        keys = [self._find_key(str(k)) for k in data.get("ssh_keys") or []]
        if None in keys:
            return _error(422, "unprocessable_entity", "You specified an invalid SSH key id or fingerprint")
        created_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        made = []
        with self.lock:
            for name in names:
                droplet_id = next(self._ids)
                d = Droplet(droplet_id, name, data["region"], data["size"], str(data["image"]), list(data.get("tags") or []),
                            [k["public_key"] for k in keys], f"{self.label}-{name}-{droplet_id}",
                            time.monotonic(), created_at, never_active=name in self.never_active, no_ssh=name in self.no_ssh,
                            user_data=data.get("user_data"))
                self._droplets[droplet_id] = d
                self._tags.update(d.tags)
                made.append(d)
            self.counts["created"] += len(made)
        for d in made:
            d.thread = threading.Thread(target=self._life, args=(d,), name=f"droplet-{d.id}", daemon=True)
            d.thread.start()
        links = {"actions": [{"id": next(self._ids), "rel": "create", "href": f"{self.url}actions/{d.id}"} for d in made]}
        with self.lock:
            if "names" in data:
                return Answer(202, {"droplets": [self._droplet_json(d) for d in made], "links": links}, created=made)
            return Answer(202, {"droplet": self._droplet_json(made[0]), "links": links}, created=made)

    def _refuse_create(self, data: dict[str, Any], names: list[str]) -> str | None:
        """What the real service answers 422 for, beyond the schema: limits and unknown slugs."""
        if len(names) > MAX_NAMES:
            return f"You may only create up to {MAX_NAMES} Droplets at a time"
        if len((data.get("user_data") or "").encode()) > 64 * 1024:
            return "user_data must be 64 KiB or less"
        if data.get("region") not in catalog.REGIONS:
            return f"You specified an invalid region for Droplet creation: {data.get('region')!r}"
        if data.get("size") not in catalog.SIZES or data["region"] not in catalog.size_regions(data["size"]):
            return "You specified an invalid size for Droplet creation"
        if str(data.get("image")) not in catalog.IMAGES:
            return "You specified an invalid image for Droplet creation"
        with self.lock:
            if len(self._droplets) + len(names) > self.droplet_limit:
                return "creating this/these droplet(s) will exceed your droplet limit"
        return None

    def _droplet_delete(self, request: Request, id: str) -> Answer:  # noqa: A002
        with self.lock:
            d = self._droplets.get(int(id))
            if d is None:
                return _not_found()
            self._delete(d)
        return Answer(204)

    def _droplets_delete_by_tag(self, request: Request) -> Answer:
        tag = request.args["tag_name"]
        with self.lock:
            if tag not in self._tags:
                return _not_found()
            for d in [d for d in self._droplets.values() if tag in d.tags]:
                self._delete(d)
        return Answer(204)

    def _delete(self, d: Droplet) -> None:
        if not d.deleted.is_set():
            self.counts["destroyed"] += 1
            d.deleted.set()

    def _life(self, d: Droplet) -> None:
        """A droplet's machine: boot it, keep it until the droplet is deleted, then remove it."""
        try:
            address = self.machines.start(d.container, d.keys, d.user_data)
            if d.no_ssh:
                self.machines.stop_ssh(d.container)
            with self.lock:
                d.address = address
        except Exception as e:  # noqa: BLE001 - the droplet stays "new"; the test sees it in errors
            d.boot_error = str(e)
            self.errors.append(f"droplet {d.name} ({d.id}): machine failed to boot: {e}")
        d.deleted.wait()
        deleted_at = time.monotonic()
        self.machines.remove(d.container)
        time.sleep(max(0.0, self.destroy_delay - (time.monotonic() - deleted_at)))
        with self.lock:
            self._droplets.pop(d.id, None)
            self.counts["gone"] += 1

    # --- JSON --------------------------------------------------------------------------------

    def _status(self, d: Droplet) -> str:
        booted = d.address is not None and time.monotonic() - d.created >= self.active_delay
        return "active" if booted and not d.never_active else "new"

    def _droplet_json(self, d: Droplet) -> dict[str, Any]:
        status = self._status(d)
        size = catalog.size_json(d.size)
        v4 = []
        if status == "active" and d.address:
            gateway = ".".join(d.address.split(".")[:2] + ["0", "1"])
            v4 = [{"ip_address": d.address, "netmask": "255.255.0.0", "gateway": gateway, "type": "public"}]
        return {
            "id": d.id, "name": d.name, "memory": size["memory"], "vcpus": size["vcpus"], "disk": size["disk"],
            "disk_info": size["disk_info"], "locked": False, "status": status, "kernel": None,
            "created_at": d.created_at, "features": ["droplet_agent"], "backup_ids": [], "next_backup_window": None,
            "snapshot_ids": [], "image": catalog.image_json(d.image), "volume_ids": [], "size": size,
            "size_slug": d.size, "networks": {"v4": v4, "v6": []}, "region": catalog.region_json(d.region),
            "tags": list(d.tags), "vpc_uuid": "5a4981aa-9653-4bd1-bef5-d6bff52042e4",
        }

    def _page(self, request: Request, key: str, items: list[dict[str, Any]]) -> Answer:
        per_page = min(MAX_PER_PAGE, max(1, int(request.args.get("per_page", 20))))
        page = max(1, int(request.args.get("page", 1)))
        last = max(1, math.ceil(len(items) / per_page))
        query = {k: v for k, v in request.args.items() if k not in ("page", "per_page")}

        def link(n: int) -> str:
            where = normalise(request.path).removeprefix("/v2/")
            return f"{self.url}{where}?{urlencode({**query, 'page': n, 'per_page': per_page})}"

        pages: dict[str, str] = {}
        if page < last:
            pages.update(next=link(page + 1), last=link(last))
        if page > 1:
            pages.update(first=link(1), prev=link(page - 1))
        chunk = items[(page - 1) * per_page:page * per_page]
        return Answer(200, {key: chunk, "links": {"pages": pages} if pages else {}, "meta": {"total": len(items)}})


def _error(status: int, error_id: str, message: str, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, {"id": error_id, "message": message, "request_id": str(uuid.uuid4())}, headers or {})


def _not_found() -> Answer:
    return _error(404, "not_found", "The resource you were accessing could not be found.")


def _fingerprint(public_key: str) -> str:
    """MD5 fingerprint as DigitalOcean shows it, computed by paramiko (independently of fleet's own code)."""
    parts = public_key.strip().split()
    if len(parts) < 2:
        raise ValueError("not a public key")
    try:
        key = paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))
    except Exception as e:  # noqa: BLE001 - any parse failure is an invalid key
        raise ValueError(str(e)) from None
    return ":".join(f"{b:02x}" for b in key.get_fingerprint())
