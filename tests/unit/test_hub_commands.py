"""The hub's image on a real manager, and the fixed overlay addresses the hub and its proxy keep."""
from __future__ import annotations

import pytest

from fleet.commands import swarm
from fleet.hub import image
from fleet.hub import plan as hub_plan
from fleet.hub.config import HubSettings

S = HubSettings(fleet="bio101", image="fleet-singleuser:test", users=("ada", "zoe-ngo"), admin="teacher")


def test_hub_dockerfile_adds_the_pinned_spawner_and_culler_to_the_official_image():
    lines = image.hub_dockerfile().splitlines()
    assert lines[0] == "FROM quay.io/jupyterhub/jupyterhub:6.1.1"
    assert "dockerspawner==14.0.0" in lines[1] and "jupyterhub-idle-culler==2.0.0" in lines[1]
    with pytest.raises(ValueError):
        image.hub_dockerfile(packages=("x; rm -rf /",))
    assert hub_plan.local_build_tag().startswith("fleet-hub:") and len(hub_plan.local_build_tag()) == len("fleet-hub:") + 12


def test_fixed_addresses_for_hub_and_caddy_outside_the_servers_range():
    assert (S.gateway, S.hub_ip, S.proxy_ip, S.ip_range) == ("10.213.0.1", "10.213.0.2", "10.213.0.3", "10.213.2.0/23")
    net = swarm.overlay_create(S.network, S.fleet, S.subnet, S.gateway, S.ip_range)
    assert net[net.index("--subnet") + 1] == "10.213.0.0/22" and net[net.index("--ip-range") + 1] == "10.213.2.0/23"
    assert swarm.network_connect(S.network, "bio101-proxy", S.proxy_ip) == (
        "docker", "network", "connect", "--ip", "10.213.0.3", "bio101-hubnet", "bio101-proxy")
