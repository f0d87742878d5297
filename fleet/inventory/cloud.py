"""The ``digitalocean:`` section: droplets fleet creates, provisions and destroys.

The API token stays out of the inventory (refuse_tokens says why). The
droplets' SSH key is a public key file beside the inventory whose private half
fleet logs in with; both are checked before a droplet is paid for.
"""
from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator

from fleet.errors import InputError
from fleet.inventory.base import Model, Path_, Problems, check_user, line_for, resolve_key

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,63}$")
TOKEN_KEYS = ("token", "access_token", "api_token", "api_key", "digitalocean_access_token", "do_token")
TOKEN_VALUE_RE = re.compile(r"^do[opr]_v1_[0-9a-f]{64}$")


class DigitalOceanSettings(Model):
    """Droplets fleet creates, provisions and destroys (see fleet/droplets.py).

    The API token is deliberately not a field: it comes from the environment
    (DIGITALOCEAN_ACCESS_TOKEN), never from a file that gets copied around.
    """

    count: int = Field(ge=1, le=100)
    region: str
    size: str
    image: str | int
    ssh_key: str  # the public key file; the private key is the same path without .pub
    user: str = "root"

    @field_validator("region", "size")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not SLUG_RE.match(v):
            raise ValueError(f"{v!r} is not a DigitalOcean slug (lower-case letters, digits, - and ., e.g. ams3, s-2vcpu-4gb)")
        return v

    @field_validator("image")
    @classmethod
    def _image(cls, v: str | int) -> str | int:
        if isinstance(v, str) and not SLUG_RE.match(v):
            raise ValueError(f"{v!r} is not an image slug like ubuntu-24-04-x64 (or a numeric image id)")
        return v

    @field_validator("ssh_key")
    @classmethod
    def _pub(cls, v: str) -> str:
        if not v.endswith(".pub"):
            raise ValueError(f"{v!r}: name the public key file (…/id_ed25519.pub); its private half, the same path "
                             "without .pub, is what fleet logs in with")
        return v

    _user = field_validator("user")(lambda v: check_user(v))


def refuse_tokens(data: dict, texts: dict[Path_, str], problems: Problems) -> None:
    """An API token written in the inventory is refused, and never echoed.

    The file is copied, mailed and committed; a token in it is a leaked key to
    the teacher's cloud account. Refused as a field name in the digitalocean
    block and as a value shaped like a DigitalOcean token anywhere.
    """
    block = data.get("digitalocean")
    for key in block if isinstance(block, dict) else ():
        if str(key).lower() in TOKEN_KEYS:
            problems.add(
                "never write the API token in the inventory (it travels with every copy of this file); remove this "
                "line and `export DIGITALOCEAN_ACCESS_TOKEN=...` in the shell that runs fab", ("digitalocean", key))
    for where, text in texts.items():
        if TOKEN_VALUE_RE.match(text.strip()):
            problems.add(
                "this looks like a DigitalOcean API token; never write it in the inventory: remove it and "
                "`export DIGITALOCEAN_ACCESS_TOKEN=...` instead", where)


def check_droplet_key(do: DigitalOceanSettings | None, path: Path, lines: dict[Path_, int]) -> None:
    """The droplets' public key must exist and be one, and its private half must sit beside it."""
    if do is None:
        return
    file, line, field = str(path), line_for(lines, ("digitalocean", "ssh_key")), "digitalocean.ssh_key"
    public = Path(resolve_key(do.ssh_key, path.parent, file, line, field))
    text = public.read_text(errors="replace").strip()
    if len(text.split()) < 2 or not text.split()[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise InputError(f"{public} is not an OpenSSH public key (ssh-ed25519 AAAA... comment)",
                         file=file, line=line, field=field)
    if not public.with_suffix("").is_file():
        raise InputError(f"the private key {public.with_suffix('')} is missing; fleet logs in to the droplets with it",
                         file=file, line=line, field=field)
