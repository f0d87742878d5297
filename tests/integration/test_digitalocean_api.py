"""fleet's DigitalOcean client and python-digitalocean against the stand-in, on the wire; no droplet is created.

These show that the stand-in really holds callers to DigitalOcean's
specification (requests and answers outside it are caught), what
python-digitalocean 1.17.0 gets wrong by that measure, and how fleet's client
handles rate limits, server errors, hangs and pages.
"""
from __future__ import annotations

from pathlib import Path

import digitalocean
import pytest

from fleet.cloud import CloudError
from fleet.cloud.digitalocean import Client, RetryPolicy
from practice.hosts import make_keypair
from tests.standin import Fault, StandIn
from tests.standin.contract import SPEC
from tests.standin.server import Answer

FAST = RetryPolicy(attempts=4, backoff=0.1, backoff_cap=0.5, rate_limit_budget=20, longest_wait=5)
SHARED_SPEC = Path(__file__).resolve().parents[3] / "shared" / "digitalocean" / "openapi-droplets.yaml"


@pytest.fixture
def api(monkeypatch, run_label):
    with StandIn(label=f"{run_label}-api") as stand_in:
        for k, v in stand_in.env().items():
            monkeypatch.setenv(k, v)
        yield stand_in


@pytest.fixture(scope="module")
def public_keys(tmp_path_factory) -> list[str]:
    return [make_keypair(tmp_path_factory.mktemp(f"k{i}"))[1] for i in range(5)]


def test_the_vendored_specification_is_the_shared_one():
    if not SHARED_SPEC.exists():
        pytest.skip(f"{SHARED_SPEC} is not beside the repository here")
    assert SPEC.read_bytes() == SHARED_SPEC.read_bytes()


def test_python_digitalocean_create_sends_vpc_uuid_null_which_the_specification_refuses(api):
    with pytest.raises(digitalocean.DataReadError):
        digitalocean.Droplet.create_multiple(token=api.token, names=["lib-01"], region="ams3", size="s-1vcpu-1gb",
                                             image="ubuntu-24-04-x64", tags=["fleet:lib"])
    assert len(api.violations) == 1 and "vpc_uuid: None is not of type 'string'" in api.violations[0]
    assert api.counts["created"] == 0 and api.droplets() == []


def test_python_digitalocean_paths_end_in_a_slash_and_validate_once_normalised(api, public_keys):
    manager = digitalocean.Manager(token=api.token)
    key = digitalocean.SSHKey(token=api.token, name="lib", public_key=public_keys[0])
    key.create()
    assert [k.name for k in manager.get_all_sshkeys()] == ["lib"]
    assert manager.get_all_droplets(tag_name="fleet:lib") == []
    assert all(path.split("?")[0].endswith("/") for _, path, _ in api.journal)
    assert api.violations == []


def test_the_stand_in_refuses_requests_and_catches_answers_outside_the_specification(api, monkeypatch):
    client = Client(retry=FAST)
    with pytest.raises(CloudError, match="422 unprocessable_entity"):
        client.call("GET", "sizes", {"per_page": 500})  # the specification's maximum is 200
    assert "per_page" in api.violations[-1]
    monkeypatch.setattr(api, "_account", lambda request: Answer(200, {"account": {"email": 5}}))
    client.account()
    assert "answer 200 to GET /v2/account" in api.violations[-1] and "5 is not of type 'string'" in api.violations[-1]


def test_a_refused_token_is_a_clear_error_that_does_not_show_it(api, monkeypatch):
    monkeypatch.setenv("DIGITALOCEAN_ACCESS_TOKEN", "dop_v1_wrong")
    with pytest.raises(CloudError) as e:
        Client(retry=FAST).sizes()
    assert "refused the token in DIGITALOCEAN_ACCESS_TOKEN (401" in str(e.value) and "dop_v1_wrong" not in str(e.value)


def test_429_5xx_and_a_hang_are_ridden_out(api):
    lines: list[str] = []
    api.inject(Fault(429, times=3, retry_after=1), Fault(500, times=1), Fault(502, times=1),
               Fault(0, times=1, hang=3.0), Fault(429, times=1, retry_after=None))
    sizes = Client(retry=FAST, request_timeout=1.0, progress=lines.append).sizes()
    assert "s-2vcpu-4gb" in [s.slug for s in sizes]
    assert all(f.hits == f.times for f in api.faults)
    assert sum("rate limited; waiting 1.0 s (retry-after)" in line for line in lines) == 3
    assert any("ratelimit-reset" in line for line in lines)
    assert any("no answer within the request timeout" in line for line in lines)
    assert any("server error 502" in line for line in lines)


def test_the_client_gives_up_after_its_bound_and_says_so(api):
    api.inject(Fault(503, times=100))
    with pytest.raises(CloudError) as e:
        Client(retry=FAST).sizes()
    assert "GET /v2/sizes: 503 server_error" in str(e.value) and "gave up after 4 tries" in str(e.value)
    assert api.faults[0].hits == 4


def test_the_keys_endpoint_has_its_own_limit_of_ten_a_minute(monkeypatch, run_label):
    with StandIn(label=f"{run_label}-keys", keys_per_minute=3) as api:
        for k, v in api.env().items():
            monkeypatch.setenv(k, v)
        client = Client(retry=FAST)
        for _ in range(3):
            client.ssh_keys()
        with pytest.raises(CloudError, match="rate limit resets only in"):
            client.ssh_keys()  # the 4th in a minute: retry-after ~60 s, longer than this client waits
        client.sizes()  # other endpoints are not limited by it


def test_lists_follow_every_page(api, public_keys):
    client = Client(retry=FAST, per_page=2)
    for i, key in enumerate(public_keys):
        client.add_ssh_key(f"k{i}", key)
    assert sorted(k.name for k in client.ssh_keys()) == [f"k{i}" for i in range(5)]
    pages = [path for method, path, _ in api.journal if method == "GET" and "account/keys" in path]
    assert len(pages) == 3 and "page=3" in pages[-1]
    assert api.violations == []
