"""Trusted HTTPS on bare IP addresses, ordered from a real ACME server, on real test hosts.

Pebble (Let's Encrypt's ACME test server, Debian's `pebble`) runs on this
machine, listening on the Docker bridge's gateway, and validates on the test
hosts' ports 80 and 443 like Let's Encrypt would on a public server. The test
hosts have private addresses and no names, so the inventories name Pebble with
`ca:` (under `tls: auto` that tries every host; Let's Encrypt would be tried
only for public addresses, a decision tests/unit/test_tls.py covers).

Three hosts: `lab-a`, reached through an alias of the SSH configuration only
(HOME points `fab` at a configuration of its own), and two by address, the
third with ports 80 and 443 unreachable (its answers from them are routed into a
black hole, as behind a cloud firewall that drops them). The tests run in order and share
the fleet: every seat gets a certificate for its host's IP address that
verifies against Pebble's root with no exception made, the blocked host fails
alone under `acme` and falls back to the proxy's own certificate under `auto`,
both within their bound; a re-run orders nothing; cards, plan and status say
what each host got; teardown removes the certificates; and a CA that requires
external account binding issues with the key taken from the environment only.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from practice import images
from tests.integration.conftest import fab, ssh

pytestmark = pytest.mark.hosts

EAB_KEY_ID = "kid-fleet"
EAB_MAC = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"  # base64url, as Pebble's example

INVENTORY = """\
name: {name}
hosts:
{hosts}docker: {{source: distro}}
parallel: 4
timeouts: {{connect: 10, certificate: {bound}}}
tls:
{tls}proxy: {{image: {caddy}, push: true}}
services:
  - {{name: web, kind: generic, image: {image}, port: 8888, secret_env: SEAT_PASSWORD, publish: 8000, seats: 2,
     memory: 64m, cpus: 0.5, push: true}}
"""


def address_towards(host_address: str) -> str:
    """This machine's own address on the way to a test host (the Docker bridge's gateway), where Pebble listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host_address, 9))  # UDP: no packet is sent, the kernel only picks the route and source address
        return s.getsockname()[0]


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def listener_certificates(folder: Path, gateway: str) -> tuple[Path, Path, Path]:
    """A small CA and the certificate of Pebble's own HTTPS listener (the gateway's and loopback's addresses)."""
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleet test: Pebble listener CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(gateway)),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "listener-ca.pem", folder / "listener.pem", folder / "listener.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class Pebble:
    """A Pebble run by this test: its directory URL, the CA of its listener, the root it issues under."""

    def __init__(self, folder: Path, gateway: str, *, eab: bool = False, validity: int | None = None):
        folder.mkdir(parents=True, exist_ok=True)
        self.listener_ca, cert, key = listener_certificates(folder, gateway)
        port, manage = free_port(gateway), free_port("127.0.0.1")
        config: dict = {"listenAddress": f"{gateway}:{port}", "managementListenAddress": f"127.0.0.1:{manage}",
                        "certificate": str(cert), "privateKey": str(key), "httpPort": 80, "tlsPort": 443,
                        "ocspResponderURL": "", "externalAccountBindingRequired": eab}
        if eab:
            config["externalAccountMACKeys"] = {EAB_KEY_ID: EAB_MAC}
        if validity:
            config["certificateValidityPeriod"] = validity
        (folder / "pebble.json").write_text(json.dumps({"pebble": config}))
        self.log = folder / "pebble.log"
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
        self.process = subprocess.Popen(["pebble", "-config", str(folder / "pebble.json")], stdout=self.log.open("w"),
                                        stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.directory = f"https://{gateway}:{port}/dir"
        context = ssl.create_default_context(cafile=str(self.listener_ca))
        end = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.directory, timeout=5, context=context) as r:
                    assert r.status == 200
                with urllib.request.urlopen(f"https://127.0.0.1:{manage}/roots/0", timeout=5, context=context) as r:
                    self.root = r.read().decode()  # new on every start: what Pebble's certificates chain to
                break
            except OSError:
                assert self.process.poll() is None and time.monotonic() < end, self.log.read_text()[-2000:]
                time.sleep(0.2)

    def issued(self) -> int:
        """Certificates Pebble has issued so far."""
        return self.log.read_text().count("Issued certificate serial")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def fleet(start_hosts, built_images, keypair, tmp_path_factory):
    if shutil.which("pebble") is None:
        pytest.skip("needs Debian's pebble (apt-get install pebble; .ci/run does)")
    built_images["seat"] = images.ensure_seat_image()  # what is tested is the proxy: a 2 MB seat will do
    work = tmp_path_factory.mktemp("acme")
    a, b, c = start_hosts("acme-a", "acme-b", "acme-c")
    gateway = address_towards(a.address)
    pebble = Pebble(work / "pebble", gateway)
    eab_pebble = Pebble(work / "pebble-eab", gateway, eab=True, validity=20 * 3600)
    try:
        key = keypair[0]
        home = work / "home"
        (home / ".ssh").mkdir(parents=True)
        (home / ".ssh" / "config").write_text(  # lab-a exists only here, as a teacher's alias
            f"Host lab-a\n  HostName {a.address}\n  User root\n  IdentityFile {key}\n\n"
            f"Host *\n  IdentityFile {key}\n")
        yield {"hosts": {"lab-a": a, "b": b, "c": c}, "key": key, "work": work, "home": home, "state": work / "state",
               "pebble": pebble, "eab": eab_pebble, "gateway": gateway}
    finally:
        pebble.stop()
        eab_pebble.stop()


def inventory(fleet, file: str, hosts: list[str], tls: str, *, name: str = "acme", bound: int = 120,
              built: dict | None = None) -> Path:
    addresses = {"lab-a": "lab-a", "b": fleet["hosts"]["b"].address, "c": fleet["hosts"]["c"].address,
                 "a": fleet["hosts"]["lab-a"].address}
    path = fleet["work"] / file
    path.write_text(INVENTORY.format(name=name, hosts="".join(f"  - {addresses[h]}\n" for h in hosts), bound=bound,
                                     tls=tls, caddy=built["caddy"], image=built["seat"]))
    return path


def pebble_tls(pebble: Pebble, mode: str) -> str:
    return f"  mode: {mode}\n  ca: {pebble.directory}\n  ca_root: {pebble.listener_ca}\n"


def run(fleet, *args, env=None, **kw):
    return fab(*args, cwd=fleet["work"], state_dir=fleet["state"], env={"HOME": str(fleet["home"]), **(env or {})},
               **kw)


def served_certificate(address: str, port: int, root: str) -> x509.Certificate:
    """The certificate a seat serves, verified against ``root`` with nothing relaxed (name and chain checked)."""
    context = ssl.create_default_context(cadata=root)
    with socket.create_connection((address, port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=address) as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def block_acme_ports(host, key) -> None:
    """Make ports 80 and 443 of the host unreachable from outside, as a cloud firewall that drops them: every
    packet leaving it from one of those ports is routed into a black hole (the host has no iptables yet)."""
    ssh(host, key, "ip rule add sport 80 blackhole && ip rule add sport 443 blackhole")


def test_acme_gives_every_seat_a_certificate_for_its_address_and_a_blocked_host_fails_alone(fleet, built_images):
    hosts, key, pebble = fleet["hosts"], fleet["key"], fleet["pebble"]
    block_acme_ports(hosts["c"], key)
    lab = inventory(fleet, "acme.yml", ["lab-a", "b", "c"], pebble_tls(pebble, "acme"), built=built_images)
    fleet["acme"] = lab
    started = time.monotonic()
    out = run(fleet, "provision", "--hosts", str(lab))
    seconds = time.monotonic() - started
    print(out.stdout, out.stderr[-3000:], f"provision with acme: {seconds:.1f} s", sep="\n")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    rows = out.stdout.splitlines()
    failed = [r for r in rows if r.startswith(hosts["c"].address) and "FAILED" in r]
    assert len(failed) == 1 and "tls: acme: no certificate for " + hosts["c"].address in failed[0]
    assert "for the tls-alpn-01 challenge" in failed[0] or "acme-challenge" in failed[0], failed[0]  # the CA's reason
    assert "2 of 3 hosts converged" in out.stdout
    assert seconds < 120 + 300  # bounded: the CA's answer, within timeouts.certificate
    # Every seat of the other two: the certificate Pebble issued for the host's IP address, verified against
    # Pebble's root with no exception made, and the seat logs in with its token.
    state = json.loads((fleet["state"] / "acme.json").read_text())
    for host_id, host in (("lab-a", hosts["lab-a"]), (hosts["b"].address, hosts["b"])):
        assert state["sites"][host_id] == {"address": host.address, "tls": "acme", "ca": pebble.directory}
        for port in (8000, 8001):
            cert = served_certificate(host.address, port, pebble.root)
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(host.address)]
            assert names.get_values_for_type(x509.DNSName) == []  # not the alias lab-a, nor any other name
            assert cert.issuer.rfc4514_string().startswith("CN=Pebble Intermediate CA")
            context = ssl.create_default_context(cadata=pebble.root)
            with urllib.request.urlopen(f"https://{host.address}:{port}/", timeout=10, context=context) as r:
                assert r.status == 200 and r.read() == b"ok\n"  # the seat itself, through the proxy
    print(f"provision to verified certificates: {time.monotonic() - started:.1f} s")
    for name in ("lab-a", "b"):  # how long the order itself took: the proxy's start to the CA's certificate
        log = [json.loads(line) for line in ssh(hosts[name], key, "docker logs acme-proxy 2>&1").splitlines()
               if line.startswith("{")]
        begun = next(e["ts"] for e in log if e.get("msg") == "serving initial configuration")
        issued = next(e["ts"] for e in log if e.get("msg") == "certificate obtained successfully")
        print(f"{name}: certificate issued {issued - begun:.2f} s after its proxy started")
    assert pebble.issued() == 2
    # ports 80 and 443 belong to the proxy only while it orders and renews; port 80 answers challenges only
    (proxy,) = json.loads(ssh(hosts["b"], key, "docker inspect acme-proxy"))
    assert sorted(proxy["HostConfig"]["PortBindings"]) == ["443/tcp", "80/tcp", "8000/tcp", "8001/tcp"]
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{hosts['b'].address}/", timeout=5)


def test_a_rerun_orders_nothing_new(fleet, built_images):
    hosts, key, pebble = fleet["hosts"], fleet["key"], fleet["pebble"]
    good = inventory(fleet, "good.yml", ["lab-a", "b"], pebble_tls(pebble, "acme"), built=built_images)
    inspect = "docker inspect --format '{{.Id}} {{.State.StartedAt}}' acme-proxy acme-web-1 acme-web-2"
    before = {h: ssh(hosts[h], key, inspect) for h in ("lab-a", "b")}
    issued = pebble.issued()
    plan = run(fleet, "plan", "--hosts", str(good))
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.count("nothing to order") == 2 and "nothing to do" in plan.stdout
    out = run(fleet, "provision", "--hosts", str(good))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 of 2 hosts converged (0 changed)" in out.stdout
    assert pebble.issued() == issued
    assert {h: ssh(hosts[h], key, inspect) for h in ("lab-a", "b")} == before
    # a proxy replaced for another reason finds its certificate in its storage and orders none either
    ssh(hosts["b"], key, "docker rm -f acme-proxy")
    out = run(fleet, "provision", "--hosts", str(good))
    assert out.returncode == 0 and "1 changed" in out.stdout, out.stdout + out.stderr
    assert pebble.issued() == issued
    served_certificate(hosts["b"].address, 8000, pebble.root)


def test_auto_falls_back_to_the_proxys_own_certificate_where_the_ca_cannot_reach(fleet, built_images):
    hosts, pebble = fleet["hosts"], fleet["pebble"]
    # auto with the teacher's own CA tries every host; a short bound shows the wait is bounded
    auto = inventory(fleet, "auto.yml", ["lab-a", "b", "c"], pebble_tls(pebble, "auto"), bound=20, built=built_images)
    fleet["auto"] = auto
    plan = run(fleet, "plan", "--hosts", str(auto))
    assert "ordered from a second proxy beside the running one" in plan.stdout, plan.stdout
    started = time.monotonic()
    out = run(fleet, "provision", "--hosts", str(auto))
    seconds = time.monotonic() - started
    print(out.stdout, out.stderr[-2000:], f"auto with a blocked host: {seconds:.1f} s", sep="\n")
    assert out.returncode == 0, out.stdout + out.stderr
    c = hosts["c"].address
    said = [line for line in out.stdout.splitlines() if line.startswith(f"{c}: tls: auto: no certificate for {c}")]
    assert len(said) == 1 and "for this run" in said[0] and "(timeouts.certificate)" in said[0], out.stdout
    assert "0 changed" not in out.stdout and "3 of 3 hosts converged" in out.stdout
    assert seconds < 20 + 240
    state = json.loads((fleet["state"] / "acme.json").read_text())
    assert state["sites"][c] == {"address": c, "tls": "internal"}
    assert state["sites"]["lab-a"]["tls"] == "acme"
    # c's seats answer with the proxy's own certificate, which its root (kept in the state) verifies
    served_certificate(c, 8000, state["proxy_ca"][c])
    with pytest.raises(ssl.SSLCertVerificationError):
        served_certificate(c, 8000, pebble.root)
    (proxy,) = json.loads(ssh(hosts["c"], fleet["key"], "docker inspect acme-proxy"))
    assert sorted(proxy["HostConfig"]["PortBindings"]) == ["8000/tcp", "8001/tcp"]  # 80/443 closed again
    assert ssh(hosts["c"], fleet["key"], "docker ps -aq --filter name=acme-proxy-acme") == ""


def test_status_shows_each_hosts_certificate(fleet):
    out = run(fleet, "status", "--hosts", str(fleet["auto"]))
    assert out.returncode == 0, out.stdout + out.stderr
    a, b, c = (h.address for h in fleet["hosts"].values())
    assert f"lab-a: CA certificate for {a}: Pebble Intermediate CA" in out.stdout
    assert f"{c}: own certificate for {c}: Caddy Local Authority" in out.stdout
    assert "WARNING" not in out.stdout  # Pebble's certificates last years here
    assert out.stdout.count("up (200)") == 6
    data = json.loads(run(fleet, "status", "--hosts", str(fleet["auto"]), "--json").stdout)
    assert [h["certificate"].split(":")[0] for h in data] == [
        f"CA certificate for {a}", f"CA certificate for {b}", f"own certificate for {c}"]


def test_cards_carry_the_real_address_and_a_note_only_where_browsers_warn(fleet):
    out = run(fleet, "handout", "--hosts", str(fleet["auto"]), "--format", "json", "--output", "-")
    assert out.returncode == 0, out.stderr
    cards = json.loads(out.stdout)
    a, c = fleet["hosts"]["lab-a"].address, fleet["hosts"]["c"].address
    assert [x["url"] for x in cards if x["host"] == "lab-a"] == [f"https://{a}:8000/", f"https://{a}:8001/"]
    assert not any("lab-a" in x["url"] or "lab-a" in x["login_url"] for x in cards)
    html = run(fleet, "handout", "--hosts", str(fleet["auto"]), "--format", "html", "--output", "-").stdout
    pieces = html.split('<article class="card"')[1:]
    assert len(pieces) == 6
    for piece in pieces:
        assert ('class="cert"' in piece) is (f'data-host="{c}"' in piece)


def test_teardown_removes_the_certificates(fleet):
    out = run(fleet, "teardown", "--hosts", str(fleet["auto"]), "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    for host in fleet["hosts"].values():
        assert ssh(host, fleet["key"], "docker volume ls -q --filter name=acme-proxy") == ""
        assert ssh(host, fleet["key"], "docker ps -aq --filter label=fleet.name=acme") == ""


def test_external_account_binding_with_the_key_from_the_environment_only(fleet, built_images):
    hosts, key, pebble = fleet["hosts"], fleet["key"], fleet["eab"]
    tls = pebble_tls(pebble, "acme") + f"  eab: {{key_id: {EAB_KEY_ID}, mac_key_env: FLEET_TEST_EAB}}\n"
    lab = inventory(fleet, "eab.yml", ["a"], tls, name="eab", built=built_images)
    a = hosts["lab-a"]
    missing = run(fleet, "provision", "--hosts", str(lab), env={"FLEET_TEST_EAB": ""})
    assert missing.returncode == 2 and "FLEET_TEST_EAB is not set" in missing.stderr, missing.stderr
    assert ssh(a, key, "docker ps -aq --filter label=fleet.name=eab") == ""  # nothing was touched
    watcher = subprocess.Popen(  # every command line on the host while it runs: the key must never show there
        ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", f"root@{a.address}",
         "end=$(($(date +%s)+90)); while [ $(date +%s) -lt $end ]; do ps -eo args; sleep 0.1; done"],
        stdout=(fleet["work"] / "eab-ps.log").open("w"))
    out = run(fleet, "provision", "--hosts", str(lab), env={"FLEET_TEST_EAB": EAB_MAC})
    plan = run(fleet, "plan", "--hosts", str(lab), "--json", env={"FLEET_TEST_EAB": EAB_MAC})
    status = run(fleet, "status", "--hosts", str(lab), env={"FLEET_TEST_EAB": EAB_MAC})
    watcher.terminate()
    watcher.wait(timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert pebble.issued() == 1
    cert = served_certificate(a.address, 8000, pebble.root)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= dt.timedelta(hours=20, minutes=1)
    # status: the issuer and the end, and a warning because it ends within 24 h
    assert f"{a.address}: CA certificate for {a.address}: Pebble Intermediate CA" in status.stdout, status.stdout
    assert f"{a.address}: WARNING: the certificate for {a.address} ends within 24 h" in status.stdout
    seen = "\n".join([out.stdout, out.stderr, plan.stdout, plan.stderr, status.stdout, status.stderr,
                      (fleet["work"] / "eab-ps.log").read_text(), lab.read_text(),
                      (fleet["state"] / "eab.json").read_text(),
                      ssh(a, key, "docker inspect eab-proxy; docker logs eab-proxy 2>&1; "
                                  "journalctl --no-pager -q 2>/dev/null; true")])
    assert EAB_MAC not in seen
    assert ssh(a, key, f"grep -c '^[[:space:]]*eab {EAB_KEY_ID} ' /etc/fleet/eab/Caddyfile; "
                       "stat -c %a /etc/fleet/eab/Caddyfile").split() == ["1", "600"]  # in the proxy's file only, 0600
    out = run(fleet, "teardown", "--hosts", str(lab), "--yes", env={"FLEET_TEST_EAB": EAB_MAC})
    assert out.returncode == 0, out.stdout + out.stderr
