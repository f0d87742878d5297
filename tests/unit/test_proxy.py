"""The TLS proxy's configuration and the names seats are served under, as text."""
from pathlib import Path

import pytest

from fleet import inventory, proxy, seats
from fleet.errors import InputError

BASE = """\
name: stats101
hosts:
  - 192.0.2.10
  - {address: 198.51.100.7, name: lab7.example.org}
  - 8.8.4.4
services:
  - {name: nb, image: "local/jupyter:1", publish: 8000, seats: 2}
  - {name: r, kind: rstudio, image: rocker/rstudio:4.4.1, publish: 8700}
"""


def load(tmp_path: Path, extra: str = "") -> inventory.Inventory:
    p = tmp_path / "lab.yml"
    p.write_text(BASE + extra)
    return inventory.load(p)


def test_internal_caddyfile(tmp_path):
    inv = load(tmp_path)
    text = proxy.caddyfile(inv, inv.hosts[0], proxy.seat_sites(seats.expand(inv)))
    assert text == """\
# Written by fleet for fleet 'stats101' on 192.0.2.10; replaced on every change.
{
\tadmin off
\tauto_https disable_redirects
\tlocal_certs
\tskip_install_trust
\tdefault_sni 192.0.2.10
}

https://192.0.2.10:8000 {
\treverse_proxy stats101-nb-1:8888
}

https://192.0.2.10:8001 {
\treverse_proxy stats101-nb-2:8888
}

https://192.0.2.10:8700 {
\treverse_proxy stats101-r-1:8787
}
"""


def test_acme_names_and_email(tmp_path):
    inv = load(tmp_path, "tls: {domain: lab.example.org, email: teacher@example.org}\n")
    assert inv.model.tls.mode == "acme"
    assert [proxy.public_name(inv, h) for h in inv.hosts] == [
        "host01.lab.example.org", "lab7.example.org", "host03.lab.example.org"]
    text = proxy.caddyfile(inv, inv.hosts[1], proxy.seat_sites(seats.expand(inv)))
    assert "\temail teacher@example.org\n" in text and "local_certs" not in text
    assert "https://lab7.example.org:8001 {" in text
    assert proxy.certificate(inv, inv.hosts[1]).ports == (80, 443)


def test_sslip_needs_a_public_ipv4(tmp_path):
    inv = load(tmp_path, "tls: sslip\n")
    assert [proxy.public_name(inv, h) for h in inv.hosts] == [
        "192-0-2-10.sslip.io", "lab7.example.org", "8-8-4-4.sslip.io"]
    assert "public IPv4" in proxy.name_problem(inv, inv.hosts[0])  # 192.0.2.0/24 is documentation space
    assert proxy.name_problem(inv, inv.hosts[1]) is None
    assert proxy.name_problem(inv, inv.hosts[2]) is None


@pytest.mark.parametrize("written,mode", [("off", "off"), ("'off'", "off"), ("internal", "internal"),
                                          ("sslip", "sslip"), ("{mode: internal}", "internal")])
def test_tls_shorthands(tmp_path, written, mode):
    assert load(tmp_path, f"tls: {written}\n").model.tls.mode == mode


def test_acme_reserves_port_80(tmp_path):
    p = tmp_path / "lab.yml"
    p.write_text(BASE.replace("publish: 8700", "publish: 80") + "tls: {domain: lab.example.org}\n")
    with pytest.raises(InputError, match=r"port 80, which the ACME CA \(Let's Encrypt\) needs"):
        inventory.load(p)


def test_bad_tls_values(tmp_path):
    with pytest.raises(InputError, match="'letsencrypt' is not valid: use 'auto', 'acme', 'internal', 'sslip' or 'off'"):
        load(tmp_path, "tls: letsencrypt\n")
    with pytest.raises(InputError, match="not an e-mail address"):
        load(tmp_path, "tls: {domain: lab.example.org, email: nope}\n")
