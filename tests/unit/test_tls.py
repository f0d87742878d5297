"""Certificates: the per-host decision (auto, acme, internal), the Caddyfile per mode and CA, the fields of
``tls:``, where students reach a host, what Caddy's storage holds and what an order's answer means.

The orders themselves run against a real ACME server (Pebble) on real test hosts:
tests/integration/test_acme.py.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleet import certs, desired, facts, firewall, handout, inventory, proxy, ready, seats
from fleet.errors import InputError
from fleet.inventory import Host
from fleet.inventory.tls import CADDY_VERSION, LETS_ENCRYPT, eab_mac_key

PUBLIC4, PUBLIC6, PRIVATE = "8.8.4.4", "2606:4700:4700::1111", "10.0.0.7"
PEBBLE = "https://172.17.0.1:14000/dir"
BASE = """\
name: lab
hosts:
  - {public4}
  - {public6}
  - {private}
  - {{address: 198.51.100.7, name: lab7.example.org}}
services:
  - {{name: nb, image: "local/jupyter:1", publish: 8000, seats: 2}}
"""
NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def load(tmp_path: Path, tls: str = "", files: dict[str, str] | None = None) -> inventory.Inventory:
    for name, text in (files or {}).items():
        (tmp_path / name).write_text(text)
    p = tmp_path / "lab.yml"
    p.write_text(BASE.format(public4=PUBLIC4, public6=f"'[{PUBLIC6}]'", private=PRIVATE) + tls)
    return inventory.load(p)


def caddyfile(inv: inventory.Inventory, host: Host, cert: proxy.Certificate | None = None) -> str:
    return proxy.caddyfile(inv, host, proxy.seat_sites(seats.expand(inv)), cert)


# --- the decision per host -----------------------------------------------------


def test_auto_is_the_default_public_gets_lets_encrypt_private_gets_internal(tmp_path):
    inv = load(tmp_path)
    assert inv.model.tls.mode == "auto"
    v4, v6, private, named = (proxy.certificate(inv, h) for h in inv.hosts)
    assert (v4.mode, v4.ca, v4.profile, v4.fallback, v4.name) == ("acme", LETS_ENCRYPT, "shortlived", True, PUBLIC4)
    assert (v6.mode, v6.ca, v6.profile, v6.name) == ("acme", LETS_ENCRYPT, "shortlived", PUBLIC6)
    assert (private.mode, private.name) == ("internal", PRIVATE) and "not a public address" in private.why
    # a named host: decided on the address its name stands for; unknown (not resolved) counts as private
    assert proxy.certificate(inv, inv.hosts[3]).mode == "internal"
    named = proxy.certificate(inv, inv.hosts[3], ip="93.184.215.14")
    assert (named.mode, named.name, named.ca, named.profile) == ("acme", "lab7.example.org", "", "")  # Caddy's defaults
    assert v4.trusted and v4.ports == (80, 443) and not private.trusted and private.ports == ()


@pytest.mark.parametrize("address,public", [
    ("8.8.8.8", True), ("2606:4700::1", True), ("10.1.2.3", False), ("172.17.0.2", False), ("192.168.1.9", False),
    ("100.64.1.1", False), ("127.0.0.1", False), ("192.0.2.10", False), ("fd00::1", False), ("fe80::1", False),
    (None, False), ("not-an-ip", False)])
def test_public_or_private(address, public):
    assert proxy.is_public(address) is public


def test_auto_with_its_own_ca_tries_every_host_and_falls_back(tmp_path):
    inv = load(tmp_path, f"tls: {{ca: {PEBBLE}}}\n")
    cert = proxy.certificate(inv, inv.hosts[2])
    assert (cert.mode, cert.ca, cert.profile, cert.fallback) == ("acme", PEBBLE, "", True)  # no profile to another CA


def test_explicit_acme_needs_no_name_and_never_falls_back(tmp_path):
    inv = load(tmp_path, "tls: acme\n")
    for host in inv.hosts[:3]:
        cert = proxy.certificate(inv, host)
        assert (cert.mode, cert.fallback, cert.ca, cert.profile) == ("acme", False, LETS_ENCRYPT, "shortlived")
    assert proxy.certificate(inv, inv.hosts[3]).profile == ""  # a name: Let's Encrypt's default profile


def test_a_profile_goes_to_another_ca_only_when_asked(tmp_path):
    inv = load(tmp_path, f"tls: {{mode: acme, ca: {PEBBLE}, profile: classic}}\n")
    assert proxy.certificate(inv, inv.hosts[0]).profile == "classic"
    inv = load(tmp_path, "tls: {mode: acme, ca: 'https://acme-staging-v02.api.letsencrypt.org/directory'}\n")
    assert proxy.certificate(inv, inv.hosts[0]).profile == "shortlived"  # staging is Let's Encrypt too


def test_internal_and_off_and_sslip_keep_their_meaning(tmp_path):
    inv = load(tmp_path, "tls: internal\n")
    assert {proxy.certificate(inv, h).mode for h in inv.hosts} == {"internal"}
    inv = load(tmp_path, "tls: off\n")
    assert {proxy.certificate(inv, h).mode for h in inv.hosts} == {"off"}
    inv = load(tmp_path, "tls: sslip\n")
    cert = proxy.certificate(inv, inv.hosts[0])
    assert (cert.mode, cert.name, cert.ca, cert.fallback) == ("acme", "8-8-4-4.sslip.io", "", False)


# --- the Caddyfile ----------------------------------------------------------------


def test_lets_encrypt_ip_certificate_carries_the_shortlived_profile(tmp_path):
    inv = load(tmp_path, "tls: {mode: acme, email: teacher@example.edu}\n")
    assert caddyfile(inv, inv.hosts[0]) == """\
# Written by fleet for fleet 'lab' on 8.8.4.4; replaced on every change.
{
\tadmin off
\tpersist_config off
\tauto_https disable_redirects
\tdefault_sni 8.8.4.4
\temail teacher@example.edu
}

(fleet-acme) {
\ttls {
\t\tissuer acme {
\t\t\tdir https://acme-v02.api.letsencrypt.org/directory
\t\t\tprofile shortlived
\t\t\temail teacher@example.edu
\t\t}
\t}
}

https://8.8.4.4:8000 {
\timport fleet-acme
\treverse_proxy lab-nb-1:8888
}

https://8.8.4.4:8001 {
\timport fleet-acme
\treverse_proxy lab-nb-2:8888
}
"""
    v6 = caddyfile(inv, inv.hosts[1])
    assert f"https://[{PUBLIC6}]:8000 {{" in v6 and f"\tdefault_sni {PUBLIC6}\n" in v6 and "profile shortlived" in v6


def test_another_ca_with_its_root_and_external_account(tmp_path):
    inv = load(tmp_path, f"tls: {{mode: acme, ca: {PEBBLE}, ca_root: ca.pem, eab: {{key_id: kid-1, mac_key_env: MAC}}}}\n",
               {"ca.pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"})
    cert = proxy.certificate(inv, inv.hosts[2], eab_mac="zWNDZM6e", ca_root=b"PEM")
    text = caddyfile(inv, inv.hosts[2], cert)
    assert "\t\tissuer acme {\n\t\t\tdir https://172.17.0.1:14000/dir\n" \
           "\t\t\ttrusted_roots /etc/caddy/fleet-ca-root.pem\n\t\t\teab kid-1 zWNDZM6e\n\t\t}" in text
    assert "profile" not in text and "local_certs" not in text
    assert "zWNDZM6e" not in repr(cert)  # the key is in the proxy's file only, never in a repr or log
    proxy_w = desired.proxy_container(inv, inv.hosts[2], seats.expand(inv), cert)
    assert ["80:80", "443:443"] == [proxy_w.run[i + 1] for i, a in enumerate(proxy_w.run)
                                    if a == "--publish" and proxy_w.run[i + 1] in ("80:80", "443:443")]
    assert "/etc/fleet/lab/ca-root.pem:/etc/caddy/fleet-ca-root.pem:ro" in proxy_w.run
    assert "fleet.tls=acme" in proxy_w.run
    assert not any("zWNDZM6e" in a for a in proxy_w.run)  # the key never reaches argv
    assert [f.path for f in proxy_w.files] == ["/etc/fleet/lab/Caddyfile", "/etc/fleet/lab/ca-root.pem"]


def test_named_hosts_keep_todays_caddyfile(tmp_path):
    inv = load(tmp_path, "tls: {domain: lab.example.org, email: teacher@example.org}\n")
    text = caddyfile(inv, inv.hosts[3])
    assert "issuer" not in text and "default_sni" not in text and "\temail teacher@example.org\n" in text
    assert "https://lab7.example.org:8000 {\n\treverse_proxy lab-nb-1:8888\n}" in text


def test_an_internal_host_publishes_no_80_or_443_and_the_order_only_proxy_nothing_else(tmp_path):
    inv = load(tmp_path, f"tls: {{ca: {PEBBLE}}}\n")
    internal = proxy.Certificate("internal", PRIVATE)
    w = desired.proxy_container(inv, inv.hosts[2], seats.expand(inv), internal)
    assert w.host_ports == (8000, 8001) and "fleet.tls=acme" not in w.run
    cert = proxy.certificate(inv, inv.hosts[2])
    order = desired.proxy_container(inv, inv.hosts[2], seats.expand(inv), cert, order_only=True)
    assert order.name == certs.order_container("lab") and order.host_ports == (80, 443)
    assert "--network" not in order.run and order.files[0].path == "/etc/fleet/lab/acme-order.Caddyfile"
    assert order.files[0].content == proxy.caddyfile(inv, inv.hosts[2], proxy.seat_sites(seats.expand(inv)),
                                                     cert).encode()


CADDY = Path(__file__).resolve().parents[2] / "build" / "caddy" / "caddy"  # practice.images.ensure_caddy_binary()


@pytest.mark.skipif(not CADDY.is_file(), reason="the Caddy binary is fetched with the test images (make images)")
@pytest.mark.parametrize("tls,host,issuer", [
    ("", 0, {"ca": LETS_ENCRYPT, "profile": "shortlived"}),  # auto, public IPv4
    ("", 1, {"ca": LETS_ENCRYPT, "profile": "shortlived"}),  # auto, public IPv6
    ("", 2, None),  # auto, private: the proxy's own authority
    (f"tls: {{mode: acme, ca: {PEBBLE}, eab: {{key_id: kid-1, mac_key_env: M}}}}\n", 2,
     {"ca": PEBBLE, "external_account": {"key_id": "kid-1", "mac_key": "bWFj"}}),
])
def test_caddy_itself_reads_each_caddyfile_as_meant(tmp_path, tls, host, issuer):
    """The pinned Caddy adapts the Caddyfile: one automation policy for the host's address, with the issuer meant."""
    inv = load(tmp_path, tls)
    cert = proxy.certificate(inv, inv.hosts[host], eab_mac="bWFj")
    path = tmp_path / "Caddyfile"
    path.write_text(caddyfile(inv, inv.hosts[host], cert))
    out = subprocess.run([str(CADDY), "adapt", "--config", str(path), "--adapter", "caddyfile"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    config = json.loads(out.stdout)
    policies = config["apps"].get("tls", {}).get("automation", {}).get("policies", [])
    if issuer is None:
        assert [i["module"] for p in policies for i in p["issuers"]] == ["internal"]
        return
    (policy,) = policies
    assert policy["subjects"] == [cert.name]
    (got,) = policy["issuers"]
    assert {k: got.get(k) for k in issuer} == issuer and got["module"] == "acme"
    assert ("profile" in got) is ("profile" in issuer)


def test_the_firewall_opens_80_and_443_only_while_acme_needs_them(tmp_path):
    inv = load(tmp_path, f"tls: {{ca: {PEBBLE}}}\nfirewall: true\n")
    host, secrets = inv.hosts[2], {"lab-nb-1": "a", "lab-nb-2": "b"}
    probe = facts.parse((Path(__file__).parent / "probe" / "debian12-docker-two-seats.txt").read_text())
    probe = dataclasses.replace(probe, firewall_tool="ufw", firewall_active=True, firewall_ports=(8000, 8001))

    def opened(cert: proxy.Certificate, f: facts.Facts) -> list:
        ports = [p for w in desired.for_host(inv, host, secrets, cert) for p in w.host_ports]
        return [s.argv[4:] for s in firewall.steps(inv, f, ports, 22) if s.title.startswith("firewall")]

    acme = proxy.certificate(inv, host)
    assert opened(acme, probe) == [("lab", "22", "8000 8001", "80", "443", "8000", "8001")]
    after = dataclasses.replace(probe, firewall_ports=(80, 443, 8000, 8001))
    assert opened(acme, after) == []
    # fallen back (or tls: internal): 80 and 443 are closed again, the seat ports stay
    assert opened(proxy.Certificate("internal", PRIVATE), after) == [("lab", "22", "80 443 8000 8001", "8000", "8001")]


def test_the_default_proxy_is_the_pinned_caddy_the_tests_build():
    from practice import images

    assert inventory.ProxySettings().image == f"caddy:{CADDY_VERSION}" == "caddy:2.11.7"
    assert images.CADDY_VERSION == CADDY_VERSION


# --- the fields of tls: ------------------------------------------------------------


@pytest.mark.parametrize("tls,message", [
    ("{ca: 'http://acme.example.edu/directory'}", "is not an ACME directory URL: https://HOST"),
    ("{ca: 'https://acme.example.edu/dir ectory'}", "is not an ACME directory URL"),
    ("{ca: 'https://acme.example.edu/{x}'}", "is not an ACME directory URL"),
    ("{mode: acme, ca_root: ca.pem}", "ca_root is the trust for your own CA's HTTPS; name that CA with `ca:`"),
    ("{mode: internal, ca: 'https://acme.example.edu/directory'}", "ca: only for certificates from an ACME CA"),
    ("{mode: off, eab: {key_id: k, mac_key_env: M}}", "eab: only for certificates from an ACME CA"),
    ("{eab: {key_id: kid-1, mac_key: abc}}", "the MAC key is a secret and is never written in the inventory"),
    ("{eab: {key_id: kid-1, mac_key_env: 1BAD}}", "is not the name of an environment variable"),
    ("{eab: {key_id: 'a b', mac_key_env: M}}", "is not a key id"),
    ("{eab: {mac_key_env: M}}", "this field is required"),
    ("{profile: 'short lived'}", "is not an ACME profile name"),
    ("{mode: sslip, ca: 'https://acme.example.edu/directory'}", "for another CA use mode: acme"),
])
def test_bad_fields_name_the_line_and_what_is_valid(tmp_path, tls, message):
    with pytest.raises(InputError, match="lab.yml:9: tls") as e:
        load(tmp_path, f"tls: {tls}\n")
    assert message in str(e.value)
    assert "abc" not in str(e.value)


def test_ca_root_must_be_a_pem_file_beside_the_inventory(tmp_path):
    with pytest.raises(InputError, match=r"lab.yml:11: tls.ca_root: cannot read 'nope.pem'"):
        load(tmp_path, f"tls:\n  ca: {PEBBLE}\n  ca_root: nope.pem\n")
    with pytest.raises(InputError, match="holds no PEM certificate"):
        load(tmp_path, f"tls:\n  ca: {PEBBLE}\n  ca_root: ca.pem\n", {"ca.pem": "hello"})
    inv = load(tmp_path, f"tls:\n  ca: {PEBBLE}\n  ca_root: ./ca.pem\n",
               {"ca.pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"})
    assert inv.model.tls.ca_root == "./ca.pem"


def test_the_eab_key_comes_from_its_variable_only_and_is_never_quoted(tmp_path):
    inv = load(tmp_path, "tls: {eab: {key_id: kid-1, mac_key_env: FLEET_EAB_MAC}}\n")
    tls = inv.model.tls
    assert eab_mac_key(tls, {"FLEET_EAB_MAC": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajV"}) == "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajV"
    with pytest.raises(InputError, match="the environment variable FLEET_EAB_MAC is not set"):
        eab_mac_key(tls, {})
    with pytest.raises(InputError, match="is not a MAC key") as e:
        eab_mac_key(tls, {"FLEET_EAB_MAC": "s3cret value!"})
    assert "s3cret" not in str(e.value)
    assert eab_mac_key(load(tmp_path).model.tls, {}) == ""


def test_auto_and_acme_reserve_ports_80_and_443(tmp_path):
    p = tmp_path / "lab.yml"
    p.write_text(BASE.format(public4=PUBLIC4, public6=PUBLIC4.replace("4.4", "4.5"), private=PRIVATE)
                 .replace("publish: 8000", "publish: 443"))
    with pytest.raises(InputError, match="port 443, which the ACME CA"):
        inventory.load(p)
    p.write_text(p.read_text() + "tls: internal\n")
    assert inventory.load(p).model.tls.mode == "internal"


# --- where students reach a host ------------------------------------------------------


def resolver(table: dict[str, list[str]]):
    return lambda name: table.get(name, [])


@pytest.mark.parametrize("host,hostname,peer,table,expected", [
    (Host("203.0.113.5", "root", 22, None), "203.0.113.5", "203.0.113.5", {}, ("203.0.113.5", "203.0.113.5")),
    # an SSH config alias with HostName: the address from the config, never the alias
    (Host("lab-a", "root", 22, None), "172.17.0.4", "172.17.0.4", {"lab-a": ["10.9.9.9"]}, ("172.17.0.4", "172.17.0.4")),
    # an alias whose HostName is a resolvable DNS name: the name
    (Host("lab-b", "root", 22, None), "lab-b.example.edu", "192.0.2.4", {"lab-b.example.edu": ["192.0.2.4"]},
     ("lab-b.example.edu", "192.0.2.4")),
    # a name only the teacher's computer knows (no dot, or not resolvable): the address the connection reached
    (Host("lab-c", "root", 22, None), "lab-c", "192.0.2.5", {"lab-c": ["192.0.2.5"]}, ("192.0.2.5", "192.0.2.5")),
    (Host("lab-d", "root", 22, None), "lab-d.internal", "192.0.2.6", {}, ("192.0.2.6", "192.0.2.6")),
    # name: wins, and stands for what it resolves to
    (Host("203.0.113.9", "root", 22, None, "lab9.example.org"), "203.0.113.9", "203.0.113.9",
     {"lab9.example.org": ["203.0.113.9"]}, ("lab9.example.org", "203.0.113.9")),
    # through a ProxyJump no peer is known: the HostName as it is
    (Host("lab-e", "root", 22, None), "lab-e", None, {}, ("lab-e", None)),
])
def test_where_students_reach_a_host(host, hostname, peer, table, expected):
    assert proxy.reach(host, hostname, peer, resolver(table)) == expected


def test_the_reached_address_is_what_cards_certificates_and_readiness_use(tmp_path):
    p = tmp_path / "lab.yml"
    p.write_text("name: lab\nhosts: [lab-a]\ntls: acme\nservices:\n  - {name: nb, image: i, publish: 8000}\n")
    inv = inventory.load(p)
    host = inv.hosts[0]
    cert = proxy.certificate(inv, host, "203.0.113.5")
    assert cert.name == "203.0.113.5" and "https://203.0.113.5:8000 {" in caddyfile(inv, host, cert)
    want = desired.for_host(inv, host, {"lab-nb-1": "t"}, cert)
    (check,) = ready.checks(inv, host, want, {"lab-nb-1": "t"}, address="203.0.113.5")
    assert check.url.startswith("https://203.0.113.5:8000/") and check.connect == "203.0.113.5:8000:127.0.0.1:8000"


# --- Caddy's storage, and what readiness trusts --------------------------------------


def test_where_caddy_keeps_a_certificate():
    assert proxy.stored_certificate(PEBBLE, "172.17.0.2") == \
        "caddy/certificates/172.17.0.1-14000-dir/172.17.0.2/172.17.0.2.crt"  # as seen on a test host
    assert proxy.stored_certificate(LETS_ENCRYPT, "lab7.example.org") == \
        "caddy/certificates/acme-v02.api.letsencrypt.org-directory/lab7.example.org/lab7.example.org.crt"
    assert proxy.stored_certificate(LETS_ENCRYPT, "2001:db8::1").endswith("/2001-db8--1/2001-db8--1.crt")


def test_readiness_trusts_the_proxys_root_or_the_cas_chain():
    internal = proxy.Certificate("internal", "10.0.0.7")
    assert proxy.trust(internal, "lab") == ["root=caddy/pki/authorities/local/root.crt"]
    acme = proxy.Certificate("acme", "10.0.0.7", ca=PEBBLE, ca_root=b"x")
    assert proxy.trust(acme, "lab", ca_root=True) == [
        "chain=caddy/certificates/172.17.0.1-14000-dir/10.0.0.7/10.0.0.7.crt", "root=/etc/fleet/lab/ca-root.pem"]
    named = proxy.Certificate("acme", "lab7.example.org")  # Caddy's defaults: Let's Encrypt, then ZeroSSL
    assert len(proxy.trust(named, "lab")) == 2
    assert proxy.trust(proxy.Certificate("off", "x"), "lab") == []


def leaf(names: list[str], issuer: str, not_after: dt.datetime) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.IPAddress(ipaddress.ip_address(n)) if proxy.is_ip(n) else x509.DNSName(n) for n in names]
    c = (x509.CertificateBuilder()
         .subject_name(x509.Name([]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(not_after - dt.timedelta(days=6)).not_valid_after(not_after)
         .add_extension(x509.SubjectAlternativeName(sans), critical=False)
         .sign(key, hashes.SHA256()))
    return c.public_bytes(serialization.Encoding.PEM).decode()


def test_a_stored_certificate_is_used_until_an_hour_before_its_end():
    cert = proxy.Certificate("acme", "10.0.0.7", ca=PEBBLE)
    path = proxy.stored_certificate(PEBBLE, "10.0.0.7")
    fresh = certs.stored([(path, leaf(["10.0.0.7"], "Pebble Intermediate CA 4ee791", NOW + dt.timedelta(days=5)))])
    assert certs.usable(fresh, cert, NOW) == fresh[0] and fresh[0].names == ("10.0.0.7",)
    ending = certs.stored([(path, leaf(["10.0.0.7"], "Pebble", NOW + dt.timedelta(minutes=30)))])
    assert certs.usable(ending, cert, NOW) is None
    other_ca = certs.stored([(proxy.stored_certificate(LETS_ENCRYPT, "10.0.0.7"), leaf(["10.0.0.7"], "R10", NOW))])
    assert certs.usable(other_ca, cert, NOW) is None  # a certificate of another CA does not count
    own = certs.stored([("caddy/certificates/local/10.0.0.7/10.0.0.7.crt", leaf(["10.0.0.7"], "Caddy Local", NOW))])
    assert certs.find(own, proxy.Certificate("internal", "10.0.0.7")) == own[0] and own[0].internal
    assert certs.stored([("x.crt", "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")]) == []


def test_status_warns_within_24_hours_of_a_cas_certificates_end():
    soon = certs.stored([("caddy/certificates/x/a/a.crt", leaf(["a.example.org"], "E7", NOW + dt.timedelta(hours=20)))])
    text, warn = certs.describe(soon[0], NOW)
    assert warn and text == "E7, expires 2026-12-07 08:00 UTC (in 20 h)"
    later = certs.stored([("caddy/certificates/x/a/a.crt", leaf(["a.example.org"], "E7", NOW + dt.timedelta(days=5)))])
    assert certs.describe(later[0], NOW) == ("E7, expires 2026-12-11 12:00 UTC (in 5 days)", False)
    own = certs.stored([("caddy/certificates/local/a/a.crt", leaf(["a"], "Caddy Local", NOW + dt.timedelta(hours=11)))])
    assert certs.describe(own[0], NOW)[1] is False  # the proxy renews its own every 12 h: nothing to warn about
    assert certs.describe(None, NOW) == ("none yet", False)


# --- an order's answer, and the fallback -----------------------------------------------


FAILED = ('{"level":"error","logger":"tls.obtain","msg":"could not get certificate from issuer","identifier":'
          '"172.17.0.2","issuer":"172.17.0.1:14000-dir","error":"HTTP 400 urn:ietf:params:acme:error:connection - '
          'Get \\"http://172.17.0.2:80/.well-known/acme-challenge/Wkh\\": context deadline exceeded"}')


def test_what_an_orders_answer_means():
    assert certs.parse('obtained\n{"msg":"certificate obtained successfully"}\n', 60) == certs.Answer(True)
    failed = certs.parse(f"failed\n{FAILED}\n", 60)  # the CA's words, without ACME's URN or the challenge token
    assert not failed.obtained and failed.reason == (
        "HTTP 400 connection - Get \"http://172.17.0.2:80/.well-known/acme-challenge/…\": context deadline exceeded")
    silent = certs.parse('silent\n{"level":"error","error":"HTTP 429 rateLimited - too many"}\n', 90)
    assert silent.reason == "no answer within 90 s (timeouts.certificate); last error: HTTP 429 rateLimited - too many"
    assert certs.parse("stopped could-not-start\nport is already allocated\n", 9).reason == \
        "the proxy stopped (could-not-start) while ordering: port is already allocated"
    challenge = ('{"level":"error","logger":"http.acme_client","msg":"challenge failed","problem":{"type":'
                 '"urn:ietf:params:acme:error:unauthorized","detail":"Failed to connect to 172.17.0.2:443 for the '
                 'tls-alpn-01 challenge"}}')
    assert certs.parse(f"silent\n{challenge}\n", 20).reason == ("no answer within 20 s (timeouts.certificate); last "
                                                               "error: Failed to connect to 172.17.0.2:443 for the "
                                                               "tls-alpn-01 challenge")
    assert not certs.parse("", 9).obtained
    assert len(certs.parse("failed\n" + "x" * 5000, 9).reason) == certs.REASON_CHARS


def test_the_fallback_is_the_same_host_on_its_own_certificate():
    from fleet.backends import seats as backend

    cert = proxy.Certificate("acme", "203.0.113.5", ca=LETS_ENCRYPT, profile="shortlived", fallback=True)
    own = backend.internal(cert)
    assert (own.mode, own.name, own.trusted, own.ports) == ("internal", "203.0.113.5", False, ())
    assert "ordered from a second proxy" in backend.describe(cert, None, True)
    assert "the proxy orders it (a failed order fails the host)" in backend.describe(
        proxy.Certificate("acme", "203.0.113.5", ca=LETS_ENCRYPT), None, False)


# --- cards ----------------------------------------------------------------------------


def test_a_trusted_seat_has_no_certificate_note():
    card = handout.Card(student=None, host="h", service="nb", kind="jupyter", seat=1, url="https://203.0.113.5:8000/",
                        user="", secret="s", login_url="https://203.0.113.5:8000/?token=s", container="c")
    assert handout.certificate_note_for(card, None) == handout.SELF_SIGNED_NOTE
    trusted = handout.Card(**{**card.__dict__, "trusted": True})
    assert handout.certificate_note_for(trusted, None) is None
    assert handout.certificate_note_for(trusted, "Teacher's words") is None
    assert 'class="cert"' not in handout.card_html(trusted, None)
