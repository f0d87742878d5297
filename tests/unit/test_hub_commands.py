"""fleet/hub/commands.py: the argv lists of the swarm and the hub container, and the hub's Dockerfile."""
from __future__ import annotations

import pytest

from fleet.hub import commands
from fleet.hub.config import HubSettings

S = HubSettings(fleet="bio101", image="fleet-singleuser:test", users=("ada", "zoe-ngo"), admin="teacher")


def test_swarm_join_reads_the_token_from_stdin():
    argv = commands.swarm_join_argv("10.0.0.1")
    assert argv[:2] == ["sh", "-c"] and '"$(cat)"' in argv[2]
    assert argv[-1] == "10.0.0.1:2377"
    assert commands.join_token_argv() == ["docker", "swarm", "join-token", "-q", "worker"]
    assert commands.swarm_init_argv("10.0.0.1") == ["docker", "swarm", "init", "--advertise-addr", "10.0.0.1"]


def test_overlay_is_attachable_and_labelled():
    argv = commands.network_create_argv(S)
    assert argv[-1] == "bio101-hubnet" and "--attachable" in argv and ["--driver", "overlay"] == argv[3:5]
    assert "fleet.name=bio101" in argv
    assert ["--opt", "encrypted"] == commands.network_create_argv(S, encrypted=True)[-3:-1]


def test_hub_run_mounts_socket_data_and_read_only_config_dir():
    argv = commands.hub_run_argv(S, "fleet-hub:test", "/etc/fleet/bio101/hub")
    joined = " ".join(argv)
    assert argv[:3] == ["docker", "run", "-d"]
    assert "--name bio101-hub --hostname bio101-hub" in joined
    assert "--network bio101-hubnet" in joined
    assert "-v /var/run/docker.sock:/var/run/docker.sock" in joined
    assert "-v bio101-hub-data:/data" in joined
    assert "-v /etc/fleet/bio101/hub:/srv/fleet:ro" in joined
    assert "-e PYTHONPATH=/srv/fleet" in joined and "--tmpfs /tmp" in joined
    assert "-p" not in argv  # Caddy on the overlay needs no published port
    assert argv[-4:] == ["fleet-hub:test", "jupyterhub", "-f", "/srv/fleet/jupyterhub_config.py"]
    published = commands.hub_run_argv(S, "fleet-hub:test", "/d", publish="127.0.0.1:8000")
    assert published[published.index("-p") + 1] == "127.0.0.1:8000:8000"


def test_orphan_services_are_those_of_logins_left_out_of_the_roster():
    listed = "ada bio101-user-ada\nbob bio101-user-bob\nteacher bio101-user-teacher\n\n"
    assert commands.orphan_services(S, listed) == ["bio101-user-bob"]
    assert commands.service_rm_argv(["x", "y"]) == ["docker", "service", "rm", "x", "y"]


def test_hub_dockerfile_adds_the_pinned_spawner_and_culler_to_the_official_image():
    text = commands.hub_dockerfile()
    lines = text.splitlines()
    assert lines[0].startswith("FROM quay.io/jupyterhub/jupyterhub:")
    assert "dockerspawner==14.0.0" in lines[1] and "jupyterhub-idle-culler==2.0.0" in lines[1]
    assert commands.hub_build_argv("bio101-hub:1")[-1] == "-"
    with pytest.raises(ValueError):
        commands.hub_dockerfile(packages=("x; rm -rf /",))


def test_fixed_addresses_for_hub_and_caddy_outside_the_servers_range():
    assert (S.gateway, S.hub_ip, S.proxy_ip, S.ip_range) == ("10.213.0.1", "10.213.0.2", "10.213.0.3", "10.213.2.0/23")
    net = commands.network_create_argv(S)
    assert net[net.index("--subnet") + 1] == "10.213.0.0/22" and net[net.index("--ip-range") + 1] == "10.213.2.0/23"
    run = commands.hub_run_argv(S, "img", "/d")
    assert run[run.index("--ip") + 1] == "10.213.0.2"
    assert commands.proxy_connect_argv(S, "bio101-proxy") == ["docker", "network", "connect", "--ip", "10.213.0.3",
                                                                "bio101-hubnet", "bio101-proxy"]
    assert "reverse_proxy 10.213.0.2:8000" in commands.caddy_site(S, "https://lab.example.org")


def test_user_services_lists_login_and_name_of_this_fleets_servers():
    argv = commands.user_services_argv(S)
    assert argv[:2] == ["sh", "-c"] and argv[-1] == "bio101"  # the fleet is an argument, not spliced into the script
    assert "label=fleet.hub.user" in argv[2] and "docker service inspect" in argv[2]
