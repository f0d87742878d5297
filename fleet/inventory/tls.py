"""The ``tls:`` and ``proxy:`` sections: how students reach their seats.

Unless ``tls: off``, one proxy container per host serves every seat over
HTTPS (fleet/proxy.py writes its configuration and decides, host by host,
where its certificate comes from); these settings say which certificates the
teacher wants, from which ACME certificate authority, and which image runs
the proxy.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import field_validator, model_validator

from fleet.errors import InputError
from fleet.inventory.base import Model, Path_, check_dns_name, check_image, line_for

# The Caddy release fleet runs as each host's TLS proxy by default; the tests build their proxy image
# from the same release's official binary (practice/images.py), so what is tested is what is pulled.
CADDY_VERSION = "2.11.7"
DEFAULT_PROXY_IMAGE = f"caddy:{CADDY_VERSION}"

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
# A CA directory URL goes into the Caddyfile as one word: no spaces, quotes, braces or backslashes.
CA_URL_RE = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?$"
                       r"|^https://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?(/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
KEY_ID_RE = re.compile(r"^[A-Za-z0-9._~+/=-]{1,256}$")
PROFILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SECRET_KEYS = ("mac_key", "hmac", "hmac_key", "key", "secret")


class EABSettings(Model):
    """External account binding: the account at the CA that certificates are ordered under (RFC 8555 7.3.4).

    The CA gives a key id and a MAC key; the MAC key is a secret and is read
    only from the environment variable named here, when a command needs it.
    """

    key_id: str
    mac_key_env: str

    @model_validator(mode="before")
    @classmethod
    def _no_secret_here(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(k in data for k in SECRET_KEYS):
            raise ValueError("the MAC key is a secret and is never written in the inventory: put it in an "
                             "environment variable and name the variable, e.g. eab: {key_id: kid-123, "
                             "mac_key_env: FLEET_EAB_MAC}")
        return data

    @field_validator("key_id")
    @classmethod
    def _key_id(cls, v: str) -> str:
        if not KEY_ID_RE.match(v):
            raise ValueError(f"{v[:40]!r} is not a key id as CAs hand them out (letters, digits and ._~+/=-, "
                             "at most 256)")
        return v

    @field_validator("mac_key_env")
    @classmethod
    def _env(cls, v: str) -> str:
        if not ENV_NAME_RE.match(v):
            raise ValueError(f"{v[:40]!r} is not the name of an environment variable (letters, digits and _, "
                             "not starting with a digit), e.g. FLEET_EAB_MAC")
        return v


class TLSSettings(Model):
    """How seats are served.

    ``auto`` (the default): a host whose address is public gets a trusted
    certificate from the ACME CA (Let's Encrypt unless ``ca:`` names another;
    with ``ca:`` every host is tried), a private one the proxy's own
    certificate; a failed order falls back to that for the run. ``acme``: a
    trusted certificate for every host (its ``name:``, ``hostNN.domain``, or
    its IP address) or a clear error. ``internal``: the proxy's own
    authority (no set-up, browsers warn). ``sslip``: a Let's Encrypt
    certificate for NAME.sslip.io (public IPv4 only). ``off``: plain HTTP
    straight to the seats (passwords readable by anyone on the network).
    """

    mode: Literal["auto", "acme", "internal", "sslip", "off"] = "auto"
    domain: str | None = None
    email: str | None = None
    ca: str | None = None  # the ACME directory URL; default Let's Encrypt
    ca_root: str | None = None  # PEM file: trust for the CA's own HTTPS (a campus or test CA), beside the inventory
    eab: EABSettings | None = None
    profile: str | None = None  # the ACME profile to order; default: `shortlived` for Let's Encrypt IP certificates

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """``tls: off`` reaches us as False (YAML 1.1); ``tls: {domain: ...}`` means acme."""
        if data is False:
            return {"mode": "off"}
        if data is True:
            return {"mode": "auto"}
        if isinstance(data, str):
            return {"mode": data}
        if isinstance(data, dict) and data.get("mode") is False:  # mode: off
            return {**data, "mode": "off"}
        if isinstance(data, dict) and "mode" not in data and "domain" in data:
            return {"mode": "acme", **data}
        return data

    _domain = field_validator("domain")(lambda v: check_dns_name(v))

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[^@\s\"'{}\\]+@[^@\s\"'{}\\]+\.[^@\s\"'{}\\]+$", v):
            raise ValueError(f"{v!r} is not an e-mail address (the CA sends expiry warnings there)")
        return v

    @field_validator("ca")
    @classmethod
    def _ca(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not CA_URL_RE.match(v) or not urlsplit(v).hostname:
            raise ValueError(f"{v[:120]!r} is not an ACME directory URL: https://HOST[:PORT]/PATH, e.g. "
                             f"{LETS_ENCRYPT} (leave `ca:` out for Let's Encrypt)")
        return v

    @field_validator("ca_root")
    @classmethod
    def _ca_root(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or "\n" in v):
            raise ValueError("name the PEM file with the root certificate of your CA, e.g. ca_root: ./acme-ca.pem")
        return v

    @field_validator("profile")
    @classmethod
    def _profile(cls, v: str | None) -> str | None:
        if v is not None and not PROFILE_RE.match(v):
            raise ValueError(f"{v[:40]!r} is not an ACME profile name (letters, digits and ._-), e.g. shortlived")
        return v

    @model_validator(mode="after")
    def _acme_fields(self) -> TLSSettings:
        acme_only = [f for f in ("ca", "ca_root", "eab", "profile") if getattr(self, f) is not None]
        if acme_only and self.mode in ("internal", "off"):
            raise ValueError(f"{', '.join(acme_only)}: only for certificates from an ACME CA (mode: auto or acme); "
                             f"mode {self.mode} does not order any")
        if self.ca_root is not None and self.ca is None:
            raise ValueError("ca_root is the trust for your own CA's HTTPS; name that CA with `ca:` too "
                             "(Let's Encrypt needs no ca_root)")
        if self.mode == "sslip" and (self.ca or self.eab):
            raise ValueError("sslip names are certified by Let's Encrypt; for another CA use mode: acme")
        return self


class ProxySettings(Model):
    """The TLS reverse proxy container run on each host (Caddy)."""

    image: str = DEFAULT_PROXY_IMAGE
    push: bool = False

    _image = field_validator("image")(lambda v: check_image(v))


def check_ca_root(tls: TLSSettings, path: Path, lines: dict[Path_, int]) -> None:
    """``ca_root``, relative to the inventory's folder, must be a file holding a PEM certificate."""
    if tls.ca_root is None:
        return
    file, line, field = str(path), line_for(lines, ("tls", "ca_root")), "tls.ca_root"
    resolved = ca_root_path(tls, path)
    try:
        text = resolved.read_bytes()[:1_000_000].decode("ascii", errors="replace")
    except OSError as e:
        raise InputError(f"cannot read {tls.ca_root!r} (looked at {resolved}): {e.strerror or e}; give the PEM file "
                         "with your CA's root certificate", file=file, line=line, field=field) from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise InputError(f"{resolved} holds no PEM certificate (-----BEGIN CERTIFICATE-----); give your CA's root "
                         "certificate in PEM form", file=file, line=line, field=field)


def ca_root_path(tls: TLSSettings, inventory_path: Path) -> Path:
    """Where ``ca_root`` is: relative paths are relative to the inventory's folder."""
    return (inventory_path.parent / Path(tls.ca_root or "").expanduser()).resolve()


def eab_mac_key(tls: TLSSettings, environ: dict[str, str] | Any, *, file: str = "", line: int | None = None) -> str:
    """The EAB MAC key from its environment variable ("" without eab); InputError, never quoting it, when unusable."""
    if tls.eab is None:
        return ""
    name = tls.eab.mac_key_env
    value = (environ.get(name) or "").strip()
    if not value:
        raise InputError(f"the environment variable {name} is not set: export the MAC key your CA gave you for "
                         f"key id {tls.eab.key_id} there (it is never written in the inventory)",
                         file=file, line=line, field="tls.eab.mac_key_env")
    if not re.match(r"^[A-Za-z0-9_-]+={0,2}$", value):
        raise InputError(f"the value of {name} is not a MAC key as CAs hand them out (base64url: letters, digits, "
                         "- and _); check what you exported", file=file, line=line, field="tls.eab.mac_key_env")
    return value
