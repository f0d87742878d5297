"""fleet/hub/hubside.py (fleet_hub.py in the hub): its logic over small stand-ins for JupyterHub and dockerspawner.

The real classes run in the hub on real test hosts (the issue's note records that
run); here the module is loaded with stand-in base classes, to pin what fleet's
subclasses add: the hash-file check, refusing removed students, volume mounts,
the node pin kept across stops, and early, explained start failures.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import sys
import types
from pathlib import Path

import pytest

from fleet.hub import auth, passwords

HUBSIDE = Path(auth.__file__).with_name("hubside.py")


class APIError(Exception):
    def __init__(self, status: int):
        super().__init__(status)
        self.response = types.SimpleNamespace(status_code=status)


def _trait(default=None, **_kw):
    return default


class Authenticator:
    allowed_users: set = set()
    admin_users: set = set()
    log = logging.getLogger("test-hub")

    def normalize_username(self, name):
        return name.lower()

    def add_user(self, user):
        return None


class SwarmSpawner:
    """Enough of dockerspawner.SwarmSpawner: state, templates, docker calls and the create/get_task seams."""

    log = logging.getLogger("test-hub")
    mem_limit, mem_guarantee, cpu_limit, cpu_guarantee = 1 << 30, 1 << 29, 1.0, 0.5
    service_name = "f-user-ada"
    network_name = "f-hubnet"
    port = 8888

    def __init__(self, name="ada", tasks=(), nodes=None):
        self.user = types.SimpleNamespace(name=name)
        self.extra_placement_spec = {"constraints": ["node.role==worker"]}
        self.extra_create_kwargs = {}
        self.extra_task_spec = {}
        self.object_labels = {"fleet.name": "f"}
        self.home_volume = "f-home-{username}"
        self.pins_file = ""
        self.object_id = ""
        self.api_token = ""
        self.tasks = list(tasks)
        self.nodes = nodes or {}
        self.created = None

    def load_state(self, state):
        self.object_id = state.get("object_id", "")

    def get_state(self):
        return {"object_id": self.object_id} if self.object_id else {}

    def clear_state(self):
        self.api_token = ""

    def _render_templates(self, text):
        return text.format(username=self.user.name)

    async def docker(self, method, *args):
        assert method == "inspect_node"
        node = self.nodes.get(args[0])
        if node is None:
            raise APIError(404)
        return node

    async def get_task(self):
        return self.tasks.pop(0) if len(self.tasks) > 1 else self.tasks[0]

    async def create_object(self):
        self.created = {"constraints": self.extra_placement_spec["constraints"], "mounts": self.mounts,
                        "labels": self.extra_create_kwargs["labels"], "task": self.extra_task_spec}
        return {"ID": "svc1"}

    async def get_ip_and_port(self):
        return self.service_name, self.port


@pytest.fixture
def hub(monkeypatch):
    """fleet_hub as the hub imports it, over the stand-ins."""
    stubs = {
        "fleet_hub_passwords": passwords,
        "docker": types.ModuleType("docker"),
        "docker.errors": types.SimpleNamespace(APIError=APIError),
        "docker.types": types.SimpleNamespace(Mount=lambda **kw: kw),
        "dockerspawner": types.SimpleNamespace(SwarmSpawner=SwarmSpawner),
        "jupyterhub": types.ModuleType("jupyterhub"),
        "jupyterhub.auth": types.SimpleNamespace(Authenticator=Authenticator),
        "traitlets": types.SimpleNamespace(Dict=_trait, Float=_trait, Unicode=_trait),
    }
    for name, module in stubs.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("fleet_hub_under_test", HUBSIDE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def login(authenticator, username, password):
    return asyncio.run(authenticator.authenticate(None, {"username": username, "password": password}))


def test_logins_are_checked_against_the_hash_file_and_it_is_reread_when_replaced(hub, tmp_path):
    path = tmp_path / "passwords"
    path.write_text(auth.hash_file_from_passwords({"ada": ("pw-ada", "00" * 16), "bob": ("pw-bob", "11" * 16)}))
    a = hub.FleetAuthenticator()
    a.hash_file = str(path)
    assert login(a, "ada", "pw-ada") == "ada"
    assert login(a, "ADA", "pw-ada") == "ada"  # normalized as JupyterHub does
    assert login(a, "ada", "pw-bob") is None  # another student's password
    assert login(a, "ada", "wrong") is None
    assert login(a, "eve", "pw-ada") is None  # unknown login
    assert login(a, "ada", "") is None
    # fleet replaces the file atomically (new inode): a new password works without a hub restart
    new = tmp_path / "passwords.new"
    new.write_text(auth.hash_file_from_passwords({"ada": ("pw-ada-2", "22" * 16)}))
    os.replace(new, path)
    assert login(a, "ada", "pw-ada-2") == "ada"
    assert login(a, "ada", "pw-ada") is None
    assert login(a, "bob", "pw-bob") is None  # removed from the file


def test_a_missing_hash_file_lets_nobody_in(hub, tmp_path):
    a = hub.FleetAuthenticator()
    a.hash_file = str(tmp_path / "none")
    assert login(a, "ada", "x") is None


def test_users_left_out_of_the_roster_are_refused_at_start_up(hub):
    a = hub.FleetAuthenticator()
    a.allowed_users, a.admin_users = {"ada"}, {"teacher"}
    a.add_user(types.SimpleNamespace(name="ada"))
    a.add_user(types.SimpleNamespace(name="teacher"))
    with pytest.raises(ValueError, match="no longer in the roster"):
        a.add_user(types.SimpleNamespace(name="bob"))


RUNNING = {"Status": {"State": "running"}, "NodeID": "node-w1",
           "NetworksAttachments": [{"Network": {"Spec": {"Name": "ingress"}}, "Addresses": ["10.0.0.5/24"]},
                                   {"Network": {"Spec": {"Name": "f-hubnet"}}, "Addresses": ["10.0.1.9/24"]}]}


def test_first_start_places_freely_then_pins_to_that_node_across_stops_and_restarts(hub):
    s = hub.FleetSwarmSpawner(tasks=[{"Status": {"State": "preparing"}}, RUNNING])
    asyncio.run(s.create_object())
    assert s.created["constraints"] == ["node.role==worker"]
    assert s.created["mounts"] == [{"target": "/home/jovyan", "source": "f-home-ada", "type": "volume",
                                    "read_only": False, "labels": {"fleet.name": "f", "fleet.hub.user": "ada"}}]
    assert s.created["labels"] == {"fleet.name": "f", "fleet.hub.user": "ada"}
    assert s.created["task"] == {"restart_policy": {"Condition": "none"}}  # the hub restarts servers, not Swarm
    asyncio.run(s.start_object())
    assert s.node_id == "node-w1"
    # the hub reaches the task's own address on the overlay, not the (possibly stale) service name
    assert asyncio.run(s.get_ip_and_port()) == ("10.0.1.9", 8888)
    s.object_id = "svc1"
    state = s.get_state()
    assert state == {"object_id": "svc1", "node_id": "node-w1"}
    s.object_id = ""  # the server stopped (culled), as DockerSpawner.stop does it: the pin stays
    s.clear_state()
    assert s.get_state() == {"node_id": "node-w1"}
    # the hub restarted: a new spawner from the database's state
    again = hub.FleetSwarmSpawner(tasks=[RUNNING], nodes={"node-w1": {"Status": {"State": "ready"},
                                                                     "Spec": {"Availability": "active"}}})
    again.load_state({"node_id": "node-w1"})
    asyncio.run(again.create_object())
    asyncio.run(again.create_object())  # never two pins
    assert again.created["constraints"] == ["node.role==worker", "node.id==node-w1"]


def test_a_pinned_node_that_left_the_swarm_is_forgotten_and_one_that_is_down_refuses(hub):
    gone = hub.FleetSwarmSpawner(tasks=[RUNNING])
    gone.load_state({"node_id": "node-x"})
    asyncio.run(gone.create_object())
    assert gone.created["constraints"] == ["node.role==worker"]
    down = hub.FleetSwarmSpawner(nodes={"node-w1": {"Status": {"State": "down"}, "Spec": {"Availability": "active"},
                                                    "Description": {"Hostname": "worker-1"}}})
    down.load_state({"node_id": "node-w1"})
    with pytest.raises(RuntimeError, match="on node worker-1, which is down"):
        asyncio.run(down.create_object())
    assert down.created is None


def test_a_task_no_node_can_take_fails_with_swarms_reason(hub):
    pending = {"Status": {"State": "pending", "Err": "no suitable node (insufficient resources on 3 nodes)"}}
    s = hub.FleetSwarmSpawner(tasks=[pending])
    s.pending_grace = 0.0
    with pytest.raises(RuntimeError, match="insufficient resources on 3 nodes"):
        asyncio.run(s.start_object())
    rejected = {"Status": {"State": "rejected", "Err": "invalid mount config"}}
    s = hub.FleetSwarmSpawner(tasks=[rejected])
    with pytest.raises(RuntimeError, match="rejected.*invalid mount config"):
        asyncio.run(s.start_object())
    assert s.node_id == ""


def test_without_an_address_on_the_overlay_the_service_name_is_used(hub):
    s = hub.FleetSwarmSpawner(tasks=[{"Status": {"State": "running"}, "NetworksAttachments": []}])
    assert asyncio.run(s.get_ip_and_port()) == ("f-user-ada", 8888)


def test_pins_outlive_the_user_in_the_database(hub, tmp_path):
    """A student removed from the roster is deleted from the hub; back on the roster, their node is found again."""
    pins = tmp_path / "fleet-pins.json"
    first = hub.FleetSwarmSpawner(tasks=[RUNNING])
    first.pins_file = str(pins)
    asyncio.run(first.create_object())
    asyncio.run(first.start_object())
    assert json.loads(pins.read_text()) == {"ada": "node-w1"}
    back = hub.FleetSwarmSpawner(tasks=[RUNNING], nodes={"node-w1": {"Status": {"State": "ready"},
                                                                    "Spec": {"Availability": "active"}}})
    back.pins_file = str(pins)
    back.load_state({})  # a new user row: no state
    asyncio.run(back.create_object())
    assert back.created["constraints"] == ["node.role==worker", "node.id==node-w1"]
    other = hub.FleetSwarmSpawner(name="bob", tasks=[RUNNING])
    other.pins_file = str(pins)
    asyncio.run(other.create_object())
    assert other.created["constraints"] == ["node.role==worker"]
    pins.write_text("not json")  # a damaged file only loses the hints
    assert first._read_pins() == {}
