"""fleet/hub/config.py: jupyterhub_config.py rendered from HubSettings, checked by running it against a fake config."""
from __future__ import annotations

import ast
import dataclasses
import types

import pytest

from fleet.hub import config
from fleet.hub.config import HubSettings


class FakeConfig:
    """What get_config() returns, enough for assignments like c.JupyterHub.hub_ip = ..."""

    def __getattr__(self, name: str) -> types.SimpleNamespace:
        section = types.SimpleNamespace()
        object.__setattr__(self, name, section)
        return section


def settings(**kw) -> HubSettings:
    base = {"fleet": "bio101", "image": "fleet-singleuser:test", "users": ("ada", "zoe-ngo"), "admin": "teacher",
            "mem_limit": 512 << 20, "mem_reservation": 256 << 20, "cpu_limit": 1.0, "cpu_reservation": 0.25}
    return HubSettings(**{**base, **kw})


def run(text: str) -> FakeConfig:
    c = FakeConfig()
    exec(compile(text, "jupyterhub_config.py", "exec"), {"get_config": lambda: c})  # noqa: S102 - our own rendering
    return c


def test_the_rendered_config_sets_what_the_hub_needs():
    c = run(config.render_config(settings()))
    assert c.JupyterHub.bind_url == "http://:8000"
    # the servers reach the hub at its fixed address: names were answered stale after restarts (aiodns)
    assert (c.JupyterHub.hub_ip, c.JupyterHub.hub_port, c.JupyterHub.hub_connect_ip) == ("0.0.0.0", 8081, "10.213.0.2")
    assert c.JupyterHub.db_url == "sqlite:////data/jupyterhub.sqlite"
    assert c.JupyterHub.cookie_secret_file == "/data/jupyterhub_cookie_secret"
    assert c.JupyterHub.cleanup_servers is False
    assert c.ConfigurableHTTPProxy.pid_file.startswith("/tmp/")
    # accounts
    assert c.JupyterHub.authenticator_class == "fleet_hub.FleetAuthenticator"
    assert c.FleetAuthenticator.hash_file == "/srv/fleet/passwords"
    assert c.Authenticator.allowed_users == {"ada", "zoe-ngo"}
    assert c.Authenticator.admin_users == {"teacher"}
    assert c.Authenticator.allow_existing_users is False
    assert c.Authenticator.delete_invalid_users is True
    # servers
    assert c.JupyterHub.spawner_class == "fleet_hub.FleetSwarmSpawner"
    assert c.SwarmSpawner.image == "fleet-singleuser:test"
    assert c.SwarmSpawner.network_name == "bio101-hubnet"
    assert c.SwarmSpawner.extra_endpoint_spec == {"mode": "dnsrr"}
    assert c.SwarmSpawner.name_template == "bio101-user-{username}"
    assert (c.SwarmSpawner.mem_limit, c.SwarmSpawner.mem_guarantee) == (512 << 20, 256 << 20)
    assert (c.SwarmSpawner.cpu_limit, c.SwarmSpawner.cpu_guarantee) == (1.0, 0.25)
    assert c.SwarmSpawner.extra_placement_spec == {"constraints": []}
    assert c.FleetSwarmSpawner.home_volume == "bio101-home-{username}"
    assert c.FleetSwarmSpawner.home_path == "/home/jovyan"
    assert c.FleetSwarmSpawner.object_labels == {"fleet.name": "bio101"}
    assert c.FleetSwarmSpawner.pins_file == "/data/fleet-pins.json"
    assert c.Spawner.default_url == "/lab"
    assert c.Spawner.environment == {"JUPYTERHUB_ACTIVITY_INTERVAL": "300"}
    # the culler, as a hub-managed service with exactly its role's scopes
    [service] = c.JupyterHub.services
    assert service["name"] == "idle-culler"
    assert service["command"][1:] == ["-m", "jupyterhub_idle_culler", "--timeout=3600"]
    assert c.JupyterHub.load_roles == [{"name": "idle-culler", "services": ["idle-culler"],
                                        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]}]


def test_reservations_default_to_the_limits_and_test_timings_pass_through():
    s = settings(mem_reservation=None, cpu_reservation=None, idle_timeout=40, cull_every=10, activity_interval=10,
                 placement=("node.role==worker",), default_url="")
    c = run(config.render_config(s))
    assert (c.SwarmSpawner.mem_guarantee, c.SwarmSpawner.cpu_guarantee) == (512 << 20, 1.0)
    assert c.JupyterHub.services[0]["command"][1:] == ["-m", "jupyterhub_idle_culler", "--timeout=40", "--cull-every=10"]
    assert c.JupyterHub.last_activity_interval == 10
    assert c.Spawner.environment == {"JUPYTERHUB_ACTIVITY_INTERVAL": "10"}
    assert c.SwarmSpawner.extra_placement_spec == {"constraints": ["node.role==worker"]}
    assert not hasattr(c.Spawner, "default_url")
    assert not hasattr(c.JupyterHub, "public_url")


def test_public_url_makes_the_hub_see_https_behind_two_proxies():
    c = run(config.render_config(settings(public_url="https://lab.example.org:8443/")))
    assert c.JupyterHub.public_url == "https://lab.example.org:8443/"


def test_no_culler_when_idle_timeout_is_zero():
    c = run(config.render_config(settings(idle_timeout=0)))
    assert not hasattr(c.JupyterHub, "services") and not hasattr(c.JupyterHub, "load_roles")


def test_values_are_data_never_code():
    odd = "registry.example:5000/x'+__import__('os').system('id')+'"
    c = run(config.render_config(settings(image=odd)))
    assert c.SwarmSpawner.image == odd
    tree = ast.parse(config.render_config(settings(image=odd)))
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert calls <= {"get_config", "set"}


@pytest.mark.parametrize("change", [
    {"fleet": "Bio"}, {"fleet": "x" * 33}, {"image": ""}, {"image": "a b"},
    {"users": ("ada", "ada")}, {"users": ("Ada",)}, {"admin": "the teacher"},
    {"mem_limit": 1 << 20}, {"mem_reservation": 1 << 40}, {"mem_reservation": 0},
    {"cpu_limit": 0}, {"cpu_reservation": 2.0}, {"idle_timeout": -1}, {"start_timeout": 0},
    {"placement": ("node.id==abc",)}, {"placement": ("rm -rf /",)}, {"home": "home"}, {"hub_dir": "/a b"},
    {"default_url": "lab"}, {"proxy_port": 0}, {"hub_port": 8001},
    {"subnet": "10.213.0.0/25"}, {"subnet": "8.8.0.0/16"}, {"subnet": "nonsense"},
    {"public_url": "https://lab.example.org"}, {"public_url": "lab.example.org/"}, {"public_url": "https://a b/"},
    {"fleet": "a" * 32, "users": ("b-b-b-b-b-b-b-b-b-b",)},  # each - escapes to -2d: past a DNS label
])
def test_invalid_settings_are_refused(change):
    with pytest.raises(ValueError):
        settings(**change)


def test_names_follow_dockerspawner_escaping():
    s = settings()
    assert config.escaped("ada") == "ada" and config.escaped("zoe-ngo") == "zoe-2dngo"
    assert s.service_name("zoe-ngo") == "bio101-user-zoe-2dngo"
    assert s.volume_name("zoe-ngo") == "bio101-home-zoe-2dngo"
    assert (s.hub_name, s.network, s.data_volume) == ("bio101-hub", "bio101-hubnet", "bio101-hub-data")
    assert dataclasses.replace(s, extra_labels={"a": "b"}).labels == {"a": "b", "fleet.name": "bio101"}
