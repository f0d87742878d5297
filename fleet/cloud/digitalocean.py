"""DigitalOcean's API v2: the only module that imports python-digitalocean.

Why not the library's own calls. python-digitalocean 1.17.0 (2021, its last
release) sets no request timeout unless an environment variable says so, does
not retry a 429 or a 5xx, turns every failed request into ``DataReadError``
with the message only (the status code and the ``retry-after`` header are
lost), has no delete-by-tag, and its ``Droplet.create()`` /
``create_multiple()`` always send ``"vpc_uuid": null``, which the API's
specification does not allow. So this module keeps the library for what it
does well, the request itself (token from ``DIGITALOCEAN_ACCESS_TOKEN``,
endpoint from ``DIGITALOCEAN_END_POINT``, headers, user agent), and builds on
that one call:

- every request has a timeout, and is retried, bounded: a 429 after the
  ``retry-after`` seconds (or until ``ratelimit-reset``), a 5xx or a broken
  connection with exponential back-off; then a clear error;
- a request that creates something is never retried after a 5xx or a broken
  connection (it may have worked): :class:`~fleet.cloud.Uncertain` tells the
  caller to look first;
- bodies are built here, to the specification (no ``vpc_uuid``: the
  region's default VPC is what a classroom wants);
- list calls follow ``links.pages.next`` by page number, always against the
  configured endpoint, never to a host named in a response.

The token is never read, printed or logged here: the library reads it from the
environment and puts it in the Authorization header, and no error message
carries headers.
"""
from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlparse

from fleet.cloud.base import CloudError, Key, Server, Size, Uncertain
from fleet.errors import InputError

if TYPE_CHECKING:
    import requests

# python-digitalocean (and requests under it) is imported on first use: every fab command loads this
# module through fleet.droplets, and importing the library costs about a fifth of a second, which a
# converged re-run of a fleet without droplets would otherwise spend for nothing.
GET, POST, DELETE = "GET", "POST", "DELETE"  # as digitalocean.baseapi spells them

TOKEN_ENV = "DIGITALOCEAN_ACCESS_TOKEN"
ENDPOINT_ENV = "DIGITALOCEAN_END_POINT"
PER_PAGE = 200  # the API's maximum
MAX_PAGES = 100
MAX_NAMES = 10  # droplets per create request, the API's limit
USER_DATA_LIMIT = 64 * 1024  # bytes of user_data the API takes


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying one request.

    Errors (5xx, broken connections, timeouts) are counted; rate-limit waits
    are summed, because a 429 says exactly when to come back and a storm of
    them is no reason to give up early, but an account whose hourly limit
    resets in 40 minutes is reported rather than waited for.
    """

    attempts: int = 6  # tries per request after errors, the first included
    backoff: float = 1.0  # first wait after an error; doubles each time
    backoff_cap: float = 30.0
    rate_limit_budget: float = 600.0  # seconds of 429 waits per request, all together
    longest_wait: float = 120.0  # one 429 asking for longer than this is reported, not waited for


@dataclass(frozen=True)
class Decision:
    wait: float | None  # seconds before the next try; None: give up
    reason: str  # why, in words, for the progress line or the error


def decide(policy: RetryPolicy, status: int | None, headers: Mapping[str, str], now: float,
           *, errors: int, waited: float) -> Decision:
    """Whether and when to retry a request that answered ``status`` (None: no answer at all).

    ``headers`` are the answer's, lower-case; ``errors`` counts the errors so
    far including this one, ``waited`` the seconds already spent on 429s.
    Pure, so the rules are tested on plain data.
    """
    if status == 429:
        wait, source = _rate_limit_wait(headers, now)
        if wait is None:
            wait, source = policy.backoff, "back-off"
        if wait > policy.longest_wait:
            return Decision(None, f"the account's rate limit resets only in {wait:.0f} s; run again then")
        if waited + wait > policy.rate_limit_budget:
            return Decision(None, f"still rate limited after waiting {waited:.0f} s")
        return Decision(wait, f"rate limited; waiting {wait:.1f} s ({source})")
    if status is not None and status < 500:
        return Decision(None, "not retryable")
    if errors >= policy.attempts:
        return Decision(None, f"gave up after {errors} tries")
    wait = min(policy.backoff_cap, policy.backoff * 2 ** (errors - 1))
    what = f"server error {status}" if status is not None else "no answer"
    return Decision(wait, f"{what}; trying again in {wait:.1f} s ({errors} of {policy.attempts} tries)")


def _rate_limit_wait(headers: Mapping[str, str], now: float) -> tuple[float | None, str]:
    """Seconds a 429 asks us to wait: ``retry-after``, else until ``ratelimit-reset`` (epoch seconds)."""
    try:
        return max(0.0, float(headers["retry-after"])), "retry-after"
    except (KeyError, ValueError):
        pass
    try:
        return max(1.0, float(headers["ratelimit-reset"]) - now + 0.5), "ratelimit-reset"
    except (KeyError, ValueError):
        return None, ""


Droplet = Server  # DigitalOcean's word for a server
SSHKey = Key


def parse_droplet(data: Mapping[str, Any]) -> Droplet:
    public = [n for n in (data.get("networks") or {}).get("v4") or [] if n.get("type") == "public"]
    return Droplet(id=int(data["id"]), name=str(data["name"]), status=str(data["status"]),
                   public_ipv4=public[0]["ip_address"] if public else None,
                   tags=tuple(data.get("tags") or ()))


def parse_size(data: Mapping[str, Any]) -> Size:
    return Size(slug=data["slug"], price_hourly=float(data["price_hourly"]),
                price_monthly=float(data["price_monthly"]), regions=tuple(data.get("regions") or ()),
                available=bool(data.get("available", True)), vcpus=int(data["vcpus"]),
                memory=int(data["memory"]), description=str(data.get("description", "")))


def parse_key(data: Mapping[str, Any]) -> SSHKey:
    return SSHKey(id=int(data["id"]), fingerprint=str(data["fingerprint"]), name=str(data.get("name", "")))


def fingerprint(public_key: str) -> str:
    """DigitalOcean's fingerprint of an OpenSSH public key line: MD5 of the key blob, as colon hex.

    Raises ValueError when the text is not ``TYPE BASE64 [comment]``.
    """
    parts = public_key.strip().split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise ValueError("not an OpenSSH public key line (ssh-ed25519 AAAA... comment)")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise ValueError("the key's base64 part is damaged") from None
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def next_page(link: str | None, current: int) -> int | None:
    """The page number in a ``links.pages.next`` URL, if it moves forward."""
    if not link:
        return None
    try:
        page = int(parse_qs(urlparse(link).query).get("page", [""])[0])
    except ValueError:
        return None
    return page if page > current else None


def create_body(names: Sequence[str], *, region: str, size: str, image: str | int,
                ssh_keys: Sequence[int | str], tags: Sequence[str], user_data: str | None = None) -> dict[str, Any]:
    """The POST /v2/droplets body, as the specification has it (no ``vpc_uuid: null``).

    ``user_data``: what cloud-init runs at first boot (the specification's
    string of at most 64 KiB).
    """
    if not 1 <= len(names) <= MAX_NAMES:
        raise ValueError(f"a create request takes 1 to {MAX_NAMES} names, not {len(names)}")
    if user_data is not None and len(user_data.encode()) > USER_DATA_LIMIT:
        raise ValueError(f"user_data is {len(user_data.encode())} bytes; DigitalOcean takes at most {USER_DATA_LIMIT}")
    body = {"names": list(names), "region": region, "size": size, "image": image,
            "ssh_keys": list(ssh_keys), "tags": list(tags), "monitoring": False, "ipv6": False}
    if user_data is not None:
        body["user_data"] = user_data
    return body


@cache
def _transport_class() -> type:
    import digitalocean.baseapi

    class _Transport(digitalocean.baseapi.BaseAPI):
        """python-digitalocean's request call, with our timeout instead of its environment variable."""

        def __init__(self, timeout: float):
            super().__init__()
            self._timeout = timeout

        def get_timeout(self) -> float:
            return self._timeout

        def send(self, method: str, path: str, params: dict[str, Any] | None) -> requests.Response:
            # BaseAPI.__perform_request: the library's one request primitive. GET params
            # become the query string; POST/DELETE params the JSON body.
            return self._BaseAPI__perform_request(path, method, params)

    return _Transport


Progress = Callable[[str], None]


class Client:
    """The DigitalOcean account named by the environment's token."""

    def __init__(self, *, request_timeout: float = 30.0, retry: RetryPolicy = RetryPolicy(),
                 progress: Progress | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time, per_page: int = PER_PAGE):
        if not os.environ.get(TOKEN_ENV, "").strip():
            raise InputError(
                f"{TOKEN_ENV} is not set. Create a token in DigitalOcean's control panel (API, Tokens; "
                f"scopes droplet, ssh_key, tag, sizes and account) and `export {TOKEN_ENV}=...` before running "
                "fleet; it is never read from the inventory"
            )
        import digitalocean

        try:
            self._api = _transport_class()(request_timeout)
        except digitalocean.EndPointError:
            raise InputError(f"{ENDPOINT_ENV} is not a URL (it should look like https://api.digitalocean.com/v2/)") from None
        self.endpoint = self._api.end_point
        self.retry = retry
        self.progress = progress or (lambda line: None)
        self.sleep = sleep
        self.clock = clock
        self.per_page = per_page
        self.requests = 0  # sent, retries included

    # --- one request, retried -------------------------------------------------

    def call(self, method: str, path: str, params: dict[str, Any] | None = None, *,
             creates: bool = False, missing_ok: bool = False) -> dict[str, Any] | None:
        """Send one request, retrying as :func:`decide` says; the parsed JSON answer ({} for 204).

        ``creates``: a 5xx or a broken connection raises Uncertain instead of
        retrying. ``missing_ok``: a 404 means "already gone": None, not an error.
        """
        import requests

        errors, waited = 0, 0.0
        what = f"{method} /v2/{path.split('?')[0]}"
        while True:
            self.requests += 1
            try:
                response = self._api.send(method, path, dict(params) if params is not None else None)
            except requests.RequestException as e:
                status, headers, detail = None, {}, _transport_error(e)
            else:
                if response.status_code < 400:
                    return _json(response, what)
                if response.status_code == 404 and missing_ok:
                    return None
                status, headers, detail = response.status_code, _lower(response.headers), _api_error(response)
            if status is not None and status < 500 and status != 429:
                raise _refused(what, status, detail)
            if creates and status != 429:
                raise Uncertain(f"DigitalOcean API {what}: {detail}; it may or may not have taken effect")
            errors += status != 429
            decision = decide(self.retry, status, headers, self.clock(), errors=errors, waited=waited)
            if decision.wait is None:
                raise CloudError(f"DigitalOcean API {what}: {detail}; {decision.reason}. Nothing more was sent; "
                                 "run the same command again later")
            self.progress(f"DigitalOcean API {what}: {detail}; {decision.reason}")
            if status == 429:
                waited += decision.wait
            self.sleep(decision.wait)

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.call(GET, path, params or {}) or {}

    def _list(self, path: str, key: str, query: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page = 1
        for _ in range(MAX_PAGES):
            data = self._get(path, {**(query or {}), "page": page, "per_page": self.per_page})
            items += data.get(key) or []
            page_after = next_page(((data.get("links") or {}).get("pages") or {}).get("next"), page)
            if page_after is None:
                return items
            page = page_after
        raise CloudError(f"DigitalOcean API GET /v2/{path}: more than {MAX_PAGES} pages; stopped reading")

    # --- what fleet uses ------------------------------------------------------

    def account(self) -> dict[str, Any]:
        """The account (checks the token; a refused one raises a clear error)."""
        return self._get("account").get("account") or {}

    def sizes(self) -> list[Size]:
        return [parse_size(s) for s in self._list("sizes", "sizes")]

    def droplets(self, tag: str) -> list[Droplet]:
        """Every droplet carrying ``tag``."""
        return [parse_droplet(d) for d in self._list("droplets", "droplets", {"tag_name": tag})]

    def droplet(self, droplet_id: int) -> Droplet | None:
        """One droplet by id; None once it is gone."""
        data = self.call(GET, f"droplets/{int(droplet_id)}", {}, missing_ok=True)
        return parse_droplet(data["droplet"]) if data and data.get("droplet") else None

    def create_droplets(self, names: Sequence[str], *, region: str, size: str, image: str | int,
                        ssh_keys: Sequence[int | str], tags: Sequence[str], user_data: str | None = None) -> list[Droplet]:
        """POST /v2/droplets with up to 10 names; the droplets as the API returned them (status new).

        Raises Uncertain when the answer was lost: list by tag before trying again.
        """
        body = create_body(names, region=region, size=size, image=image, ssh_keys=ssh_keys, tags=tags,
                           user_data=user_data)
        data = self.call(POST, "droplets", body, creates=True) or {}
        found = data.get("droplets") or ([data["droplet"]] if data.get("droplet") else [])
        return [parse_droplet(d) for d in found]

    def destroy_droplet(self, droplet_id: int) -> bool:
        """DELETE one droplet; False if it was already gone."""
        return self.call(DELETE, f"droplets/{int(droplet_id)}", None, missing_ok=True) is not None

    def destroy_tagged(self, tag: str) -> None:
        """DELETE /v2/droplets?tag_name=TAG: every droplet with the tag (the library has no such call)."""
        self.call(DELETE, f"droplets?tag_name={quote(tag, safe='')}", None, missing_ok=True)

    def ssh_keys(self) -> list[SSHKey]:
        return [parse_key(k) for k in self._list("account/keys", "ssh_keys")]

    def add_ssh_key(self, name: str, public_key: str) -> SSHKey:
        data = self.call(POST, "account/keys", {"name": name, "public_key": public_key.strip()}, creates=True) or {}
        return parse_key(data["ssh_key"])

    def delete_ssh_key(self, key_id: int) -> None:
        self.call(DELETE, f"account/keys/{int(key_id)}", None, missing_ok=True)


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _json(response: requests.Response, what: str) -> dict[str, Any]:
    if response.status_code == 204 or not response.content:
        return {}
    try:
        data = response.json()
    except ValueError:
        raise CloudError(f"DigitalOcean API {what}: the answer was not JSON") from None
    if not isinstance(data, dict):
        raise CloudError(f"DigitalOcean API {what}: the answer was not a JSON object")
    return data


def _api_error(response: requests.Response) -> str:
    """``STATUS id: message`` from the API's error body, without echoing anything else."""
    try:
        body = response.json()
        return f"{response.status_code} {body.get('id', '')} ({body.get('message', '')})"
    except (ValueError, AttributeError):
        return f"{response.status_code} {response.reason or ''}".strip()


def _transport_error(e: requests.RequestException) -> str:
    import requests

    if isinstance(e, requests.Timeout):
        return "no answer within the request timeout"
    if isinstance(e, requests.ConnectionError):
        return "cannot connect (or the connection broke)"
    return f"request failed ({type(e).__name__})"


def _refused(what: str, status: int, detail: str) -> CloudError:
    if status == 401:
        return CloudError(f"DigitalOcean refused the token in {TOKEN_ENV} (401 unauthorized); "
                          "check that it is current and has write scope")
    if status == 403:
        return CloudError(f"DigitalOcean API {what}: {detail}; the token lacks the scope for this")
    return CloudError(f"DigitalOcean API {what}: {detail}")


class DigitalOcean:
    """The :class:`fleet.cloud.Provider` for DigitalOcean: the inventory's block over :class:`Client`."""

    name, label, noun, max_batch = "digitalocean", "DigitalOcean", "droplet", MAX_NAMES

    def __init__(self, settings: Any, *, client: Client | None = None, progress: Callable[[str], None] | None = None):
        self.settings = settings
        self.client = client or Client(progress=progress)

    def servers(self, tag: str) -> list[Server]:
        return self.client.droplets(tag)

    def server(self, server_id: int) -> Server | None:
        return self.client.droplet(server_id)

    def create(self, names: Sequence[str], *, key_id: int, tag: str, user_data: str | None = None) -> list[Server]:
        s = self.settings
        return self.client.create_droplets(names, region=s.region, size=s.size, image=s.image, ssh_keys=[key_id],
                                           tags=[tag], user_data=user_data)

    def destroy(self, server_id: int) -> bool:
        return self.client.destroy_droplet(server_id)

    def destroy_tagged(self, tag: str) -> None:
        self.client.destroy_tagged(tag)

    def sizes(self) -> list[Size]:
        return self.client.sizes()

    def keys(self) -> list[Key]:
        return self.client.ssh_keys()

    def add_key(self, name: str, public_key: str) -> Key:
        return self.client.add_ssh_key(name, public_key)

    def delete_key(self, key_id: int) -> None:
        self.client.delete_ssh_key(key_id)

    def fingerprint(self, public_key: str) -> str:
        return fingerprint(public_key)
