"""The TLS proxy of each host: a Caddy configuration, and the names seats are served under.

One Caddy container per host terminates HTTPS for every seat (seat n on
https://NAME:publish+n-1/) and forwards to the seat over the fleet's private
network, WebSockets included (Caddy's reverse_proxy passes them as they are).

- ``internal``: Caddy's own certificate authority issues a certificate for
  the host's address (an IP SAN for an IP address). No set-up; browsers warn
  until the authority's root certificate is trusted, and that root is
  fetched into the state so the teacher can hand it out.
- ``sslip`` / ``acme``: Let's Encrypt certificates for a DNS name (the
  sslip.io name of the public IPv4, or the host's name under ``domain``),
  which needs port 80 of the host reachable from the internet.
"""
from __future__ import annotations

import ipaddress

from fleet.inventory import Host, Inventory
from fleet.seats import Seat

ROOT_CA = "/data/caddy/pki/authorities/local/root.crt"


def container_name(fleet: str) -> str:
    return f"{fleet}-proxy"


def data_volume(fleet: str) -> str:
    """The proxy's data volume: its certificates, and the root of its own authority (tls: internal)."""
    return f"{fleet}-proxy-data"


def needs_port_80(inventory: Inventory) -> bool:
    """Let's Encrypt's HTTP challenge arrives on port 80."""
    return inventory.model.tls.mode in ("sslip", "acme")


def sslip_name(address: str) -> str:
    return address.replace(".", "-") + ".sslip.io"


def public_name(inventory: Inventory, host: Host) -> str:
    """The name students type: the host's DNS name when TLS needs one, else its address.

    Under ``tls: {domain: D}`` a host without its own ``name:`` is ``hostNN.D``,
    NN being its position in the inventory.
    """
    tls = inventory.model.tls
    if host.name:
        return host.name
    if tls.mode == "sslip":
        return sslip_name(host.address)
    if tls.mode == "acme" and tls.domain and host in inventory.hosts:
        return f"host{inventory.hosts.index(host) + 1:02d}.{tls.domain}"
    return host.address


def name_problem(inventory: Inventory, host: Host) -> str | None:
    """Why this host cannot have the TLS the inventory asks for, or None."""
    tls = inventory.model.tls
    if tls.mode == "sslip" and not host.name:
        try:
            ip = ipaddress.ip_address(host.address)
        except ValueError:
            return f"tls: sslip needs an IPv4 address; {host.address} is a name (give it `name:` or use tls: internal)"
        if ip.version != 4 or not ip.is_global:
            return (f"tls: sslip needs a public IPv4 address, and {host.address} is not one "
                    "(Let's Encrypt could not reach it); use tls: internal")
    if tls.mode == "acme" and not tls.domain and not host.name:
        return "tls: acme needs `domain:` or a `name:` for every host"
    return None


def warnings(inventory: Inventory) -> list[str]:
    """What a teacher must hear before running seats this way."""
    if inventory.model.tls.mode == "off":
        return ["tls: off serves every seat over plain HTTP: anyone on the same network (a cafe or "
                "conference Wi-Fi) can read the students' tokens, passwords and work. Use tls: internal."]
    return []


def caddyfile(inventory: Inventory, host: Host, seats: list[Seat]) -> str:
    """The whole Caddyfile of one host (pure; tested as text)."""
    tls = inventory.model.tls
    name = public_name(inventory, host)
    site = f"[{name}]" if ":" in name else name
    options = ["admin off", "auto_https disable_redirects"]
    if tls.mode == "internal":
        # Browsers send no SNI to an IP address: serve the host's certificate anyway.
        options += ["local_certs", "skip_install_trust", f"default_sni {name}"]
    if tls.email:
        options.append(f"email {tls.email}")
    lines = [f"# Written by fleet for fleet {inventory.name!r} on {host.id}; replaced on every change.", "{"]
    lines += [f"\t{o}" for o in options] + ["}", ""]
    for seat in seats:
        lines += [f"https://{site}:{seat.host_port} {{",
                  f"\treverse_proxy {seat.container}:{seat.service.container_port}",
                  "}", ""]
    return "\n".join(lines)
