"""The ``tls:`` and ``proxy:`` sections: how students reach their seats.

Unless ``tls: off``, one proxy container per host serves every seat over
HTTPS (fleet/proxy.py writes its configuration); these settings say where
its certificates come from and which image runs it.
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import field_validator, model_validator

from fleet.inventory.base import Model, check_dns_name, check_image


class TLSSettings(Model):
    """How seats are served. ``internal``: HTTPS with certificates from the
    proxy's own authority (no set-up, browsers warn once); ``sslip``: trusted
    Let's Encrypt certificates for NAME.sslip.io (public IPv4 only); ``acme``:
    trusted certificates for the hosts' DNS names under ``domain`` (or their
    ``name:``); ``off``: plain HTTP straight to the seats (passwords readable
    by anyone on the network)."""

    mode: Literal["internal", "sslip", "acme", "off"] = "internal"
    domain: str | None = None
    email: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """``tls: off`` reaches us as False (YAML 1.1); ``tls: {domain: ...}`` means acme."""
        if data is False:
            return {"mode": "off"}
        if data is True:
            return {"mode": "internal"}
        if isinstance(data, str):
            return {"mode": data}
        if isinstance(data, dict) and "mode" not in data and "domain" in data:
            return {"mode": "acme", **data}
        return data

    _domain = field_validator("domain")(lambda v: check_dns_name(v))

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", v):
            raise ValueError(f"{v!r} is not an e-mail address (Let's Encrypt sends expiry warnings there)")
        return v


class ProxySettings(Model):
    """The TLS reverse proxy container run on each host (Caddy)."""

    image: str = "caddy:2"
    push: bool = False

    _image = field_validator("image")(lambda v: check_image(v))
