"""Who may log in and how: sudo with a password, a user without sudo, a changed host key.

One real test host. The "server admin" set-up (a user whose sudo wants a
password, a regenerated host key) is done with `docker exec`, as an admin
would on the console; fleet itself only ever talks SSH to the host.
"""
from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from tests.integration.conftest import fab, ssh

pytestmark = pytest.mark.hosts

INVENTORY = """\
name: access
ssh: {{key: {key}, user: {user}}}
hosts: [{address}]
docker: {{source: distro}}
timeouts: {{connect: 5}}
services:
  - {{name: nb, image: {image}, publish: 9000, seats: 1, memory: 128m, push: true}}
proxy: {{image: {caddy}, push: true}}
"""


def admin(host, script: str) -> None:
    subprocess.run(["docker", "exec", host.container, "sh", "-c", script], check=True, timeout=60,
                   capture_output=True)


@pytest.fixture(scope="module")
def host(start_hosts, keypair):
    (h,) = start_hosts("access")
    admin(h, "useradd -m -s /bin/bash pwuser && echo 'pwuser:Sud0-pass word' | chpasswd "
             "&& echo 'pwuser ALL=(ALL) ALL' > /etc/sudoers.d/pwuser "
             "&& cp -r /home/teacher/.ssh /home/pwuser/ && chown -R pwuser: /home/pwuser/.ssh")
    return h


@pytest.fixture
def inventory_for(host, keypair, built_images, tmp_path):
    def write(user: str):
        p = tmp_path / f"{user}.yml"
        p.write_text(INVENTORY.format(key=keypair[0], user=user, address=host.address, image=built_images["jupyter"],
                                      caddy=built_images["caddy"]))
        return p
    return write


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    return tmp_path_factory.mktemp("access-state")


def test_user_without_sudo_gets_one_clear_line(inventory_for, state):
    out = fab("provision", "--hosts", str(inventory_for("student")), cwd=state, state_dir=state)
    assert out.returncode == 1
    assert "FAILED: user 'student' needs a sudo password: run with --prompt-for-sudo-password" in out.stdout
    assert "Traceback" not in out.stderr


def test_sudo_with_a_password(inventory_for, state, host, keypair):
    inv = inventory_for("pwuser")
    no_password = fab("plan", "--hosts", str(inv), cwd=state, state_dir=state)
    assert no_password.returncode == 1 and "needs a sudo password" in no_password.stdout
    # Fabric's --prompt-for-sudo-password stores the answer as config sudo.password; the
    # FABRIC_SUDO_PASSWORD variable sets the same value without a terminal.
    out = fab("provision", "--hosts", str(inv), cwd=state, state_dir=state,
              env={"FABRIC_SUDO_PASSWORD": "Sud0-pass word"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert sorted(ssh(host, keypair[0], "docker ps --filter label=fleet.name=access --format '{{.Names}} {{.State}}'")
                  .splitlines()) == ["access-nb-1 running", "access-proxy running"]
    # the password went over stdin: nothing in the host's journal of commands shows it
    assert "Sud0-pass" not in ssh(host, keypair[0], "journalctl --no-pager -q _COMM=sudo 2>/dev/null; true")


def test_changed_host_key_is_refused_until_accepted(inventory_for, state, host, keypair):
    inv = inventory_for("teacher")
    first = fab("status", "--hosts", str(inv), cwd=state, state_dir=state)
    assert first.returncode == 0, first.stdout + first.stderr
    pinned = json.loads((state / "access.json").read_text())["host_keys"]
    assert list(pinned) == [host.address]
    admin(host, "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A -q && systemctl restart ssh")
    refused = fab("status", "--hosts", str(inv), cwd=state, state_dir=state)
    assert refused.returncode == 1
    assert f"the SSH host key of {host.address} has CHANGED" in refused.stdout
    assert json.loads((state / "access.json").read_text())["host_keys"] == pinned
    accepted = fab("provision", "--hosts", str(inv), "--accept-new-host-key", cwd=state, state_dir=state)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert json.loads((state / "access.json").read_text())["host_keys"] != pinned
    again = fab("status", "--hosts", str(inv), cwd=state, state_dir=state)
    assert again.returncode == 0, again.stdout


def test_firewall_leaves_ssh_and_seats_open_and_the_rest_closed(inventory_for, state, host, keypair):
    inv = inventory_for("teacher")
    inv.write_text(inv.read_text() + "firewall: true\n")
    admin(host, "nohup python3 -m http.server 9999 >/dev/null 2>&1 &")
    deadline = time.monotonic() + 20
    while not _port_open(host.address, 9999) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _port_open(host.address, 9999)
    out = fab("provision", "--hosts", str(inv), cwd=state, state_dir=state)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "firewall (ufw): allow SSH (22) and ports 9000, deny the rest" in out.stderr
    assert not _port_open(host.address, 9999), "a port nobody asked for still answers"
    assert _port_open(host.address, 9000) and _port_open(host.address, 22)
    assert "Status: active" in ssh(host, keypair[0], "ufw status")
    again = fab("provision", "--hosts", str(inv), cwd=state, state_dir=state)
    assert again.returncode == 0 and "(0 changed)" in again.stdout, again.stdout + again.stderr


def _port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=3):
            return True
    except OSError:
        return False
