"""The pure parts of the droplet feature, on plain data: names, reconcile, batches, prices, retries, keys."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fleet.cloud.digitalocean import (
    Droplet,
    RetryPolicy,
    Size,
    create_body,
    decide,
    fingerprint,
    next_page,
    parse_droplet,
)
from fleet.servers import decide as servers_decide
from fleet.servers import records
from fleet.servers.decide import Reconciled, batches, pick_size, quote, reconcile


def d(i: int, name: str, status: str = "active", ip: str | None = "203.0.113.9") -> Droplet:
    return Droplet(id=i, name=name, status=status, public_ipv4=ip, tags=("fleet:lab",))


# --- names and reconcile ----------------------------------------------------------------


def test_names_and_tag():
    assert servers_decide.tag_for("lab") == "fleet:lab"
    assert [servers_decide.server_name("lab", n) for n in (1, 9, 10, 100)] == ["lab-01", "lab-09", "lab-10", "lab-100"]
    assert servers_decide.number_of("lab", "lab-07") == 7
    assert servers_decide.number_of("lab", "lab-2-07") is None
    assert servers_decide.number_of("lab-2", "lab-2-07") == 7


def test_reconcile_from_nothing_creates_all():
    assert reconcile("lab", 3, []) == Reconciled(keep=(), create=("lab-01", "lab-02", "lab-03"), remove=())


def test_reconcile_same_count_adopts_and_creates_nothing():
    existing = [d(12, "lab-02"), d(11, "lab-01"), d(13, "lab-03")]
    plan = reconcile("lab", 3, existing)
    assert [x.name for x in plan.keep] == ["lab-01", "lab-02", "lab-03"]
    assert plan.create == () and plan.remove == ()


def test_reconcile_larger_count_adds_missing_names_even_in_gaps():
    plan = reconcile("lab", 4, [d(11, "lab-01"), d(13, "lab-03")])
    assert plan.create == ("lab-02", "lab-04")
    assert [x.id for x in plan.keep] == [11, 13]


def test_reconcile_smaller_count_removes_highest_numbered_first():
    existing = [d(i, f"lab-{i:02d}") for i in range(1, 6)]
    plan = reconcile("lab", 2, existing)
    assert [x.name for x in plan.remove] == ["lab-05", "lab-04", "lab-03"]
    assert [x.name for x in plan.keep] == ["lab-01", "lab-02"]


def test_reconcile_duplicate_name_keeps_the_older_droplet():
    plan = reconcile("lab", 1, [d(50, "lab-01"), d(40, "lab-01")])
    assert [x.id for x in plan.keep] == [40]
    assert [x.id for x in plan.remove] == [50]


def test_reconcile_foreign_name_with_the_tag_is_removed():
    plan = reconcile("lab", 1, [d(1, "lab-01"), d(2, "my-own-box")])
    assert [x.name for x in plan.remove] == ["my-own-box"]


def test_batches_respect_the_api_limit_of_ten():
    names = [f"lab-{i:02d}" for i in range(1, 24)]
    got = batches(names, 10)
    assert [len(b) for b in got] == [10, 10, 3]
    assert [n for b in got for n in b] == names


# --- sizes and the price quote ------------------------------------------------------------

SIZE = Size(slug="s-2vcpu-4gb", price_hourly=0.03571, price_monthly=24.0, regions=("ams3", "fra1"),
            available=True, vcpus=2, memory=4096)


def test_pick_size_explains_what_is_wrong():
    assert pick_size([SIZE], "s-2vcpu-4gb", "ams3", "DigitalOcean") == SIZE
    assert "not offered in region 'nyc3'" in pick_size([SIZE], "s-2vcpu-4gb", "nyc3", "DigitalOcean")
    assert "is not a DigitalOcean size; sizes in ams3: s-2vcpu-4gb" in pick_size([SIZE], "s-9", "ams3", "DigitalOcean")


def test_quote_shows_what_happens_and_the_price_per_hour_and_for_24_hours():
    class Settings:
        region, image = "ams3", "ubuntu-24-04-x64"

    plan = Reconciled(keep=(d(1, "lab-01"),), create=("lab-02", "lab-03"), remove=(d(9, "lab-09"),))
    text = quote("lab", Settings, SIZE, plan, label="DigitalOcean", noun="droplet")
    assert text.splitlines() == [
        "DigitalOcean, fleet 'lab' (tag fleet:lab): s-2vcpu-4gb (2 vCPU, 4 GB) in ams3, image ubuntu-24-04-x64",
        "  create  2: lab-02, lab-03",
        "  DESTROY 1: lab-09 (id 9, 203.0.113.9); everything on them is lost",
        "  keep    1: lab-01",
        "  price: $0.0357 an hour each; 3 droplets: $0.1071 an hour, $2.57 for 24 hours. "
        "Billed until `fab teardown` destroys them",
    ]


def test_status_line_names_what_each_droplet_waits_for():
    names = {1: "lab-01", 2: "lab-02", 3: "lab-03"}
    seen = {1: d(1, "lab-01"), 2: d(2, "lab-02", "new", None)}
    assert servers_decide.status_line("droplet", names, seen, {1}) == (
        "droplets: 1/3 ready (waiting: lab-02 new, lab-03 not listed yet)")


# --- retries --------------------------------------------------------------------------------

P = RetryPolicy(attempts=4, backoff=1.0, backoff_cap=5.0, rate_limit_budget=30.0, longest_wait=20.0)


def test_429_waits_for_retry_after():
    got = decide(P, 429, {"retry-after": "3"}, now=1000.0, errors=0, waited=0)
    assert got.wait == 3.0 and "retry-after" in got.reason


def test_429_without_retry_after_waits_until_ratelimit_reset():
    got = decide(P, 429, {"ratelimit-reset": "1007"}, now=1000.0, errors=0, waited=0)
    assert got.wait == 7.5 and "ratelimit-reset" in got.reason


def test_429_that_resets_too_late_or_past_the_budget_gives_up_clearly():
    assert "resets only in 3600 s" in decide(P, 429, {"retry-after": "3600"}, now=0, errors=0, waited=0).reason
    late = decide(P, 429, {"retry-after": "5"}, now=0, errors=0, waited=28)
    assert late.wait is None and "still rate limited after waiting 28 s" in late.reason


def test_5xx_and_broken_connections_back_off_exponentially_then_give_up():
    waits = [decide(P, 500, {}, now=0, errors=n, waited=0).wait for n in (1, 2, 3)]
    assert waits == [1.0, 2.0, 4.0]
    assert decide(P, None, {}, now=0, errors=3, waited=0).wait == 4.0
    assert decide(RetryPolicy(attempts=9, backoff_cap=5.0), 503, {}, now=0, errors=8, waited=0).wait == 5.0
    assert decide(P, 502, {}, now=0, errors=4, waited=0).reason == "gave up after 4 tries"


def test_other_4xx_are_not_retried():
    assert decide(P, 422, {}, now=0, errors=1, waited=0).wait is None
    assert decide(P, 404, {}, now=0, errors=1, waited=0).wait is None


# --- the API's data -------------------------------------------------------------------------


def test_create_body_follows_the_specification():
    body = create_body(["lab-01"], region="ams3", size="s-1vcpu-1gb", image="ubuntu-24-04-x64", ssh_keys=[7],
                       tags=["fleet:lab"])
    assert "vpc_uuid" not in body  # python-digitalocean sends null, which the specification refuses
    assert body["names"] == ["lab-01"] and body["tags"] == ["fleet:lab"] and body["ssh_keys"] == [7]
    with pytest.raises(ValueError):
        create_body([f"n{i}" for i in range(11)], region="a", size="b", image="c", ssh_keys=[], tags=[])


def test_parse_droplet_takes_the_public_ipv4_only():
    data = {"id": 5, "name": "lab-01", "status": "active", "tags": ["fleet:lab"],
            "networks": {"v4": [{"ip_address": "10.110.0.2", "type": "private"},
                                {"ip_address": "203.0.113.5", "type": "public"}], "v6": []}}
    assert parse_droplet(data).public_ipv4 == "203.0.113.5"
    assert parse_droplet({**data, "networks": {"v4": []}}).public_ipv4 is None
    assert not parse_droplet({**data, "status": "new"}).usable


def test_next_page_only_moves_forward():
    assert next_page("https://api.digitalocean.com/v2/droplets?page=2&per_page=1", 1) == 2
    assert next_page("https://elsewhere.example/v2/droplets?page=1", 1) is None
    assert next_page(None, 1) is None


def test_fingerprint_matches_ssh_keygen(tmp_path: Path):
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-t", "ed25519", "-N", "", "-q", "-f", str(key)], check=True)
    public = (tmp_path / "k.pub").read_text()
    out = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", str(key) + ".pub"], capture_output=True,
                         text=True, check=True).stdout
    assert "MD5:" + fingerprint(public) in out
    with pytest.raises(ValueError):
        fingerprint("not a key")


# --- hosts from the state ---------------------------------------------------------------------


def test_hosts_from_state_are_the_droplets_with_an_address(tmp_path: Path):
    (tmp_path / "id").write_text("private")
    (tmp_path / "id.pub").write_text("ssh-ed25519 AAAA teacher")
    inv_path = tmp_path / "lab.yml"
    inv_path.write_text("name: lab\ndigitalocean: {count: 2, region: ams3, size: s-1vcpu-1gb, image: debian-12-x64, "
                        "ssh_key: id.pub}\nservices: [{name: nb, image: x, publish: 8000}]\n")
    from fleet import inventory

    inv = inventory.load(inv_path)
    state = {"digitalocean": {"droplets": {
        "12": {"name": "lab-02", "address": "203.0.113.2"},
        "11": {"name": "lab-01", "address": "203.0.113.1"},
        "13": {"name": "lab-03", "address": None}}}}
    hosts = records.hosts_from_state(inv, state)
    assert [(h.address, h.user, h.port, h.key) for h in hosts] == [
        ("203.0.113.1", "root", 22, str(tmp_path / "id")), ("203.0.113.2", "root", 22, str(tmp_path / "id"))]
    assert records.hosts_from_state(inv, {}) == ()


# --- the state's record: ids at once, stale pins dropped ----------------------------------------


@pytest.fixture
def session(tmp_path: Path, monkeypatch):
    from fleet import inventory
    from fleet.session import Session

    monkeypatch.setenv("FLEET_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "id").write_text("private")
    (tmp_path / "id.pub").write_text("ssh-ed25519 AAAA teacher")
    path = tmp_path / "lab.yml"
    path.write_text("name: lab\ndigitalocean: {count: 2, region: ams3, size: s-1vcpu-1gb, image: debian-12-x64, "
                    "ssh_key: id.pub}\nservices: [{name: nb, image: x, publish: 8000}]\n")
    return Session(inventory.load(path))


def test_remember_writes_ids_at_once_and_forgets_an_old_machines_pin(session):
    session.keys.pinned["203.0.113.1"] = "ssh-ed25519 OLDKEY"
    session.state.data["host_keys"]["203.0.113.1"] = "ssh-ed25519 OLDKEY"
    records.remember(session.state, session.keys, "digitalocean", [d(11, "lab-01", "new", None)])
    on_disk = json.loads(session.state.path.read_text())
    assert on_disk["digitalocean"]["droplets"] == {"11": {"name": "lab-01", "address": None, "ready": False}}
    assert session.hosts == ()
    # the first time its address is known:
    records.remember(session.state, session.keys, "digitalocean", [d(11, "lab-01", "active", "203.0.113.1")])
    assert "203.0.113.1" not in session.keys.pinned and "203.0.113.1" not in session.state.data["host_keys"]
    assert [h.address for h in session.hosts] == ["203.0.113.1"]


def test_forget_drops_the_droplet_its_credentials_and_its_pin(session):
    records.remember(session.state, session.keys, "digitalocean", [d(11, "lab-01", "active", "203.0.113.1")])
    session.state.data["secrets"]["203.0.113.1"] = {"lab-nb-1": "s3cret"}
    session.keys.pinned["203.0.113.1"] = "ssh-ed25519 KEY"
    records.forget(session.state, session.keys, "digitalocean", [11])
    on_disk = json.loads(session.state.path.read_text())
    assert on_disk["digitalocean"]["droplets"] == {} and "203.0.113.1" not in on_disk["secrets"]
    assert "203.0.113.1" not in session.keys.pinned


def test_the_library_primitive_fleet_relies_on_is_there():
    """python-digitalocean is pinned at 1.17.0; an upgrade that renames its request call fails here first."""
    from importlib.metadata import version

    from digitalocean.baseapi import BaseAPI

    assert version("python-digitalocean") == "1.17.0"  # its own __version__ still says 1.16.0
    assert callable(getattr(BaseAPI, "_BaseAPI__perform_request", None))
