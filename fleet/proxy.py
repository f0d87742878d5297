"""The TLS proxy of each host: where its certificate comes from, its Caddyfile, the names seats are served under.

One Caddy container per host terminates HTTPS for every site on it and
forwards to the site's upstream over the fleet's private network, WebSockets
included (Caddy's reverse_proxy passes them as they are). A site is plain
data, a public port and an upstream: a seats host has one per seat
(https://NAME:publish+n-1/), a hub's manager one for the class URL.

Where a host's certificate comes from (:func:`certificate`, decided per host
and per run):

- ``acme``: an ACME CA (Let's Encrypt unless ``tls.ca`` names another)
  issues it for the host's name, or for its IP address when it has none (to
  Let's Encrypt such an order carries the ``shortlived`` profile it requires
  for IP addresses: ~6-day certificates, which Caddy renews by itself). The
  CA validates on the host's ports 80 and 443, which the proxy then
  publishes; port 80 answers challenges and nothing else (no redirects).
- ``internal``: Caddy's own certificate authority issues a certificate for
  the host's address (an IP SAN for an IP address). No set-up; browsers warn
  until the authority's root certificate is trusted, and that root is
  fetched into the state so the teacher can hand it out.
- ``tls: auto`` (the default) is acme for a host whose address is public
  (any host when ``tls.ca`` names the teacher's own CA, which may reach
  private addresses) and internal otherwise; when the order fails the host
  is served with internal for that run (fleet/certs.py orders and decides).

Certificates live in the proxy's data volume (Caddy's storage): a re-run, or
a proxy replaced for another reason, finds them there and orders nothing.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fleet.inventory import Host, Inventory
from fleet.inventory.tls import LETS_ENCRYPT
from fleet.seats import Seat

ROOT_CA = "/data/caddy/pki/authorities/local/root.crt"
INTERNAL_ROOT = "caddy/pki/authorities/local/root.crt"  # the same, inside the data volume
SHORTLIVED = "shortlived"  # Let's Encrypt's profile for IP-address certificates
CA_ROOT_IN_CONTAINER = "/etc/caddy/fleet-ca-root.pem"
LETS_ENCRYPT_HOSTS = ("acme-v02.api.letsencrypt.org", "acme-staging-v02.api.letsencrypt.org")
ZEROSSL = "https://acme.zerossl.com/v2/DV90"  # Caddy's second default issuer, for named hosts without `ca:`


def container_name(fleet: str) -> str:
    return f"{fleet}-proxy"


def data_volume(fleet: str) -> str:
    """The proxy's data volume: its certificates, and the root of its own authority (tls: internal)."""
    return f"{fleet}-proxy-data"


def ca_root_file(fleet: str) -> str:
    """Where the host keeps ``tls.ca_root`` (trust for the CA's own HTTPS), mounted into the proxy."""
    return f"/etc/fleet/{fleet}/ca-root.pem"


@dataclass(frozen=True)
class Site:
    """One HTTPS address the proxy serves: ``https://NAME:port/`` forwarded to ``upstream`` (host:port)."""

    port: int
    upstream: str


def seat_sites(seats: Iterable[Seat]) -> list[Site]:
    """A site per seat: its published port, forwarded to its container on the private network."""
    return [Site(s.host_port, f"{s.container}:{s.service.container_port}") for s in seats]


@dataclass(frozen=True)
class Certificate:
    """Where one host's certificate comes from in this run, and for which name."""

    mode: str  # acme | internal | off
    name: str  # the name (or IP address) students type: in URLs, in the certificate, the default SNI
    ca: str = ""  # acme: the CA's directory URL ("" for Caddy's defaults: Let's Encrypt, then ZeroSSL)
    profile: str = ""  # acme: the ACME profile to order ("" for the CA's default)
    fallback: bool = False  # tls: auto: when the order fails, internal for this run instead of a failed host
    why: str = ""  # for plan: why this mode
    eab_mac: str = field(default="", repr=False)  # the EAB MAC key (from the environment), only for the Caddyfile
    ca_root: bytes = field(default=b"", repr=False)  # tls.ca_root's PEM: trust for the CA's own HTTPS

    @property
    def trusted(self) -> bool:
        """Browsers trust it without help (a CA's certificate), so cards need no note."""
        return self.mode == "acme"

    @property
    def ports(self) -> tuple[int, ...]:
        """The host ports the CA validates on (http-01 on 80, tls-alpn-01 on 443): published only for acme."""
        return (80, 443) if self.mode == "acme" else ()

    def issuers(self) -> list[str]:
        """The CA directories whose certificates count (Caddy's two defaults when ``ca`` is "")."""
        if self.mode != "acme":
            return []
        return [self.ca] if self.ca else [LETS_ENCRYPT, ZEROSSL]

    def describe(self) -> str:
        """One line for plan: the mode, from where, for which name."""
        if self.mode == "off":
            return "plain HTTP (tls: off)"
        if self.mode == "internal":
            return f"the proxy's own certificate for {self.name} (browsers warn){': ' + self.why if self.why else ''}"
        ca = self.ca or LETS_ENCRYPT
        text = f"a trusted certificate for {self.name} from {ca}" + (f" (profile {self.profile})" if self.profile else "")
        return text + ("; if the order fails, the proxy's own certificate for this run (tls: auto)" if self.fallback else "")


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def is_lets_encrypt(ca: str) -> bool:
    return (urlsplit(ca or LETS_ENCRYPT).hostname or "") in LETS_ENCRYPT_HOSTS


def sslip_name(address: str) -> str:
    return address.replace(".", "-") + ".sslip.io"


def public_name(inventory: Inventory, host: Host, address: str | None = None) -> str:
    """The name students type: the host's DNS name when it has one, else the address they reach it at.

    ``address``: where students reach the host, as the SSH connection found it
    (fleet/session.py: a HostName from ~/.ssh/config, or the address the
    connection reached); the inventory's address when not known. Under
    ``tls: {domain: D}`` a host without its own ``name:`` is ``hostNN.D``, NN
    being its position in the inventory.
    """
    tls = inventory.model.tls
    address = address or host.address
    if host.name:
        return host.name
    if tls.mode == "sslip":
        return sslip_name(address)
    if tls.mode in ("acme", "auto") and tls.domain and host in inventory.hosts:
        return f"host{inventory.hosts.index(host) + 1:02d}.{tls.domain}"
    return address


def reach(host: Host, hostname: str, peer: str | None, resolve: Callable[[str], list[str]]) -> tuple[str, str | None]:
    """Where students reach ``host``: (the name or address for its URLs and certificate, an IP address it stands for).

    The host's ``name:`` when it has one; else the HostName the SSH client
    used (from ~/.ssh/config, or the inventory's address) when it is an IP
    address, or a DNS name (with a dot) that resolves; else the address the
    SSH connection actually reached (``peer``). An alias only the teacher's
    SSH configuration knows (``hosts: [lab-a]``) so never reaches a card.
    ``resolve``: name → IP addresses, bounded (fleet.local.resolve).
    """
    if host.name:
        ips = resolve(host.name)
        return host.name, ips[0] if ips else None
    if is_ip(hostname):
        return hostname, hostname
    if "." in hostname.strip("."):
        ips = resolve(hostname)
        if ips:
            return hostname, ips[0]
    return (peer, peer) if peer else (hostname, None)


def is_public(ip: str | None) -> bool:
    """An address the CA on the internet can reach: global unicast (not private, loopback, CGNAT, documentation)."""
    try:
        return ip is not None and ipaddress.ip_address(ip).is_global
    except ValueError:
        return False


def certificate(inventory: Inventory, host: Host, address: str | None = None, ip: str | None = None, *,
                eab_mac: str = "", ca_root: bytes = b"") -> Certificate:
    """Where ``host``'s certificate comes from (pure): the decision of ``tls.mode`` for this host.

    ``address``: where students reach it (see :func:`public_name`); ``ip``: an
    IP address its public name stands for (itself when it is one, what the
    name resolved to, or None), for auto's public/private decision;
    ``eab_mac`` and ``ca_root``: the EAB MAC key (from its environment
    variable) and tls.ca_root's content, which the proxy's files carry.
    """
    tls = inventory.model.tls
    name = public_name(inventory, host, address)
    if is_ip(name):
        ip = name
    if tls.mode == "off":
        return Certificate("off", name)
    if tls.mode == "internal":
        return Certificate("internal", name, why="tls: internal")
    if tls.mode == "auto" and not tls.ca and not is_public(ip):
        where = ip or name
        return Certificate("internal", name, why=f"tls: auto: {where} is not a public address, so Let's Encrypt "
                                                 "cannot reach it")
    lets_encrypt = is_lets_encrypt(tls.ca or "")
    profile = tls.profile or (SHORTLIVED if lets_encrypt and is_ip(name) else "")
    explicit = bool(tls.ca or tls.eab or profile or is_ip(name))  # else Caddy's defaults, as for named hosts before
    return Certificate("acme", name, ca=(tls.ca or LETS_ENCRYPT) if explicit else "", profile=profile,
                       fallback=tls.mode == "auto", why=f"tls: {tls.mode}", eab_mac=eab_mac,
                       ca_root=ca_root if tls.ca_root else b"")


def name_problem(inventory: Inventory, host: Host, address: str | None = None) -> str | None:
    """Why this host cannot have the TLS the inventory asks for, or None."""
    tls = inventory.model.tls
    address = address or host.address
    if tls.mode == "sslip" and not host.name:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return f"tls: sslip needs an IPv4 address; {address} is a name (give it `name:` or use tls: auto)"
        if ip.version != 4 or not ip.is_global:
            return (f"tls: sslip needs a public IPv4 address, and {address} is not one "
                    "(Let's Encrypt could not reach it); use tls: auto")
    return None


def warnings(inventory: Inventory) -> list[str]:
    """What a teacher must hear before running seats this way."""
    if inventory.model.tls.mode == "off":
        return ["tls: off serves every seat over plain HTTP: anyone on the same network (a cafe or "
                "conference Wi-Fi) can read the students' tokens, passwords and work. Use tls: auto."]
    return []


def caddyfile(inventory: Inventory, host: Host, sites: Iterable[Site], cert: Certificate | None = None) -> str:
    """The whole Caddyfile of one host (pure; tested as text): every site, with ``cert``'s certificates.

    ``cert``: this run's decision (:func:`certificate`); by default the
    inventory's for the host's own address.
    """
    tls = inventory.model.tls
    cert = cert or certificate(inventory, host)
    name = cert.name
    site = f"[{name}]" if ":" in name else name
    options = ["admin off"]
    issuer: list[str] = []
    if cert.mode == "acme":
        options.append("persist_config off")  # no autosave.json: the config may hold the EAB key
    options.append("auto_https disable_redirects")  # port 80 answers ACME challenges, nothing else
    if cert.mode == "internal":
        # Browsers send no SNI to an IP address: serve the host's certificate anyway.
        options += ["local_certs", "skip_install_trust", f"default_sni {name}"]
    elif cert.mode == "acme" and is_ip(name):
        options.append(f"default_sni {name}")
    if tls.email:
        options.append(f"email {tls.email}")
    if cert.mode == "acme" and cert.ca:
        issuer = [f"dir {cert.ca}"]
        if cert.profile:
            issuer.append(f"profile {cert.profile}")
        if cert.ca_root:
            issuer.append(f"trusted_roots {CA_ROOT_IN_CONTAINER}")
        if tls.eab:
            issuer.append(f"eab {tls.eab.key_id} {cert.eab_mac}")
        if tls.email:
            issuer.append(f"email {tls.email}")
    lines = [f"# Written by fleet for fleet {inventory.name!r} on {host.id}; replaced on every change.", "{"]
    lines += [f"\t{o}" for o in options] + ["}", ""]
    if issuer:
        lines += ["(fleet-acme) {", "\ttls {", "\t\tissuer acme {"] + [f"\t\t\t{i}" for i in issuer]
        lines += ["\t\t}", "\t}", "}", ""]
    for s in sites:
        lines.append(f"https://{site}:{s.port} {{")
        if issuer:
            lines.append("\timport fleet-acme")
        lines += [f"\treverse_proxy {s.upstream}", "}", ""]
    return "\n".join(lines)


# --- where Caddy keeps what it ordered (its storage in the data volume) -------


def _safe(key: str) -> str:
    """certmagic's StorageKeys.Safe: how a name becomes a folder name in Caddy's storage."""
    key = key.lower().strip()
    for old, new in ((" ", "_"), ("+", "_plus_"), ("*", "wildcard_"), (":", "-"), ("..", "")):
        key = key.replace(old, new)
    return re.sub(r"[^\w@.-]", "", key)


def issuer_key(ca: str) -> str:
    """certmagic's ACMEIssuer.IssuerKey: the CA's host and path, e.g. acme-v02.api.letsencrypt.org-directory."""
    url = urlsplit(ca)
    key = url.netloc
    path = url.path.replace("/", "-").replace("\\", "-").strip("-")
    return f"{key}-{path}" if path else key


def stored_certificate(ca: str, name: str) -> str:
    """The certificate chain Caddy stores for ``name`` from ``ca``, relative to the data volume's root."""
    return f"caddy/certificates/{_safe(issuer_key(ca))}/{_safe(name)}/{_safe(name)}.crt"


def trust(cert: Certificate, fleet: str, *, ca_root: bool = False) -> list[str]:
    """What readiness checks a seat's certificate against, for the readiness script (fleet/ready.py).

    ``root=PATH``: a root certificate; ``chain=PATH``: a chain Caddy stored,
    whose issuers (all but its first certificate) are trusted. Relative paths
    are inside the proxy's data volume. For internal: the proxy's own root.
    For acme: the issuer chain the CA returned with this host's certificate
    (curl accepts a chain that ends at a trusted intermediate), and the CA
    root the teacher named, if any: so a seat answers only with the
    certificate the CA issued for its name, unexpired.
    """
    if cert.mode == "internal":
        return [f"root={INTERNAL_ROOT}"]
    if cert.mode != "acme":
        return []
    out = [f"chain={stored_certificate(ca, cert.name)}" for ca in cert.issuers()]
    return out + ([f"root={ca_root_file(fleet)}"] if ca_root else [])
