"""push: true to three real hosts: the image leaves this computer once, the hosts relay it along a chain.

Real test hosts (systemd + OpenSSH + their own Docker), the real `fab`, the
real 481 MB Jupyter image. What fleet reports (FLEET_STATS: bytes it sent
from this computer, which host relayed to which) is checked against the hosts
themselves: image ids, running seats, sshd's log of who logged in from where,
and that no one-time key is left on any of them.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.integration.conftest import fab

pytestmark = pytest.mark.hosts

INVENTORY = """\
name: relay
ssh: {{key: {key}}}
hosts:
  - {{address: {a}, user: root}}
  - {{address: {b}, user: teacher}}
  - {{address: {c}, user: root}}
docker: {{source: distro}}
tls: off
parallel: 3
services:
  - name: nb
    kind: jupyter
    image: {image}
    publish: 8000
    seats: 1
    memory: 256m
    cpus: 0.5
    push: true
"""


def on(host, *argv: str, check: bool = True) -> str:
    """Look inside a test host without SSH (so sshd's log holds only what fleet did)."""
    out = subprocess.run(["docker", "exec", host.container, *argv], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 or not check, out.stderr
    return out.stdout


def local(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout.strip()


@pytest.fixture(scope="module")
def fleet(start_hosts, built_images, keypair, tmp_path_factory):
    hosts = start_hosts("relay-a", "relay-b", "relay-c")
    work = tmp_path_factory.mktemp("relay")
    lab = work / "lab.yml"
    a, b, c = hosts
    lab.write_text(INVENTORY.format(key=keypair[0], a=a.address, b=b.address, c=c.address,
                                    image=built_images["jupyter"]))
    image = built_images["jupyter"]
    return {"hosts": hosts, "work": work, "lab": lab, "state": work / "state", "image": image,
            "id": local("docker", "image", "inspect", "--format", "{{.Id}}", image),
            "size": int(local("docker", "image", "inspect", "--format", "{{.Size}}", image))}


def provision(fleet, name: str):
    stats = fleet["work"] / f"{name}.json"
    out = fab("provision", "--hosts", str(fleet["lab"]), cwd=fleet["work"], state_dir=fleet["state"],
              env={"FLEET_STATS": str(stats)})
    print(out.stdout, out.stderr, sep="\n")
    return out, json.loads(stats.read_text())


def accepted_from(host) -> list[str]:
    """Source addresses of every SSH login sshd accepted on this host."""
    log = on(host, "journalctl", "-u", "ssh", "--no-pager", "-o", "cat")
    return [line.split(" from ")[1].split()[0] for line in log.splitlines() if line.startswith("Accepted publickey")]


def no_keys_left(fleet) -> None:
    for h in fleet["hosts"]:
        for user_home in ("/root", "/home/teacher"):
            assert "fleet-relay" not in on(h, "cat", f"{user_home}/.ssh/authorized_keys")
        assert on(h, "sh", "-c", "find /tmp -name key -o -name known_hosts | head").strip() == ""
        assert on(h, "sh", "-c", "ls /var/tmp/fleet-relay-relay 2>&1 || true").startswith("ls: cannot access")


def test_the_image_leaves_this_computer_once(fleet):
    out, stats = provision(fleet, "first")
    assert out.returncode == 0, out.stderr
    assert stats["fallbacks"] == []
    seed = stats["seeds"][fleet["image"]]
    receivers = sorted(r[2] for r in stats["relayed"])
    assert sorted([seed, *receivers]) == sorted(h.address for h in fleet["hosts"])
    # a chain: each host read from the one that started receiving before it, the first from this computer
    senders = [r[1] for r in stats["relayed"]]
    assert seed in senders and len(set(senders)) == len(senders) and not set(senders) - {seed, *receivers}
    # About one image left this computer, all of it to the seed: docker save's tar is close to the image size.
    assert 0.8 * fleet["size"] < stats["pushed_bytes"] < 1.3 * fleet["size"], (stats["pushed_bytes"], fleet["size"])
    assert stats["hosts"][seed]["pushed_bytes"] == stats["pushed_bytes"]
    assert all(stats["hosts"][h.address]["connections"] == 1 for h in fleet["hosts"])
    for h in fleet["hosts"]:
        assert on(h, "docker", "image", "inspect", "--format", "{{.Id}}", fleet["image"]).strip() == fleet["id"]
        assert on(h, "docker", "inspect", "--format", "{{.State.Status}}", "relay-nb-1").strip() == "running"
    # sshd on each sender saw its receiver log in (the relay), the last one saw only this computer.
    for h in fleet["hosts"]:
        readers = sorted(r[2] for r in stats["relayed"] if r[1] == h.address)
        assert sorted(set(accepted_from(h)) - {fleet_gateway(h)}) == readers
    no_keys_left(fleet)


def fleet_gateway(host) -> str:
    """This computer's address as the test host sees it."""
    return local("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.Gateway}}{{end}}", host.container)


def test_a_converged_rerun_sends_nothing(fleet):
    out, stats = provision(fleet, "again")
    assert out.returncode == 0, out.stderr
    assert stats["pushed_bytes"] == 0 and stats["relayed"] == [] and stats["seeds"] == {}
    assert all(h == {"connections": 1, "round_trips": 1, "pushed_bytes": 0, "data_bytes": 0} for h in stats["hosts"].values()), \
        stats["hosts"]


def test_hosts_the_relay_cannot_reach_get_it_from_this_computer(fleet):
    for h in fleet["hosts"]:  # back to hosts without the image, and without an SSH client
        on(h, "sh", "-c", "docker rm -f relay-nb-1 && docker rmi -f \"$1\" && mv /usr/bin/ssh /usr/bin/ssh.off",
           "sh", fleet["image"])
    try:
        out, stats = provision(fleet, "fallback")
    finally:
        for h in fleet["hosts"]:
            on(h, "mv", "/usr/bin/ssh.off", "/usr/bin/ssh", check=False)
    assert out.returncode == 0, out.stderr
    assert "no ssh client on this host" in out.stderr and "sending" in out.stderr
    assert stats["relayed"] == [] and len(stats["fallbacks"]) == 2
    assert 2.4 * fleet["size"] < stats["pushed_bytes"] < 3.9 * fleet["size"]
    for h in fleet["hosts"]:
        assert on(h, "docker", "image", "inspect", "--format", "{{.Id}}", fleet["image"]).strip() == fleet["id"]
    no_keys_left(fleet)
