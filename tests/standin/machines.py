"""Each stand-in droplet is a real machine: a test host container (systemd + OpenSSH, cloud-init).

Started with practice.hosts.start_hosts, so it boots like the other test
hosts (boot watchdog included) and has the droplet's SSH public keys in
root's authorized_keys, as cloud-init puts them on a real droplet. Its
address on Docker's bridge is the droplet's public IPv4. Every container and
volume carries the label ``fleet-practice=<stand-in label>``. Like a droplet, it
runs its create request's ``user_data`` with cloud-init at first boot (a NoCloud
seed written into the container before it starts). The stand-in
removes a droplet's container when the droplet is deleted, and all of them
when it shuts down.
"""
from __future__ import annotations

from practice import hosts as practice_hosts
from practice.images import run
from tests.standin.catalog import MACHINE_IMAGE

NO_KEY = "# this droplet was created without an SSH key"
SEED = "/var/lib/cloud/seed/nocloud"  # cloud-init's NoCloud datasource: what DigitalOcean's metadata service is to a droplet


class Machines:
    def __init__(self, label: str, *, image: str = MACHINE_IMAGE, boot_timeout: float = 180):
        self.label = label
        self.image = image
        self.boot_timeout = boot_timeout

    def start(self, container: str, public_keys: list[str], user_data: str | None = None) -> str:
        """Boot one machine with these keys for root, and ``user_data`` seeded for cloud-init as a droplet
        has it at first boot; its address once SSH answers (blocks)."""
        keys = "\n".join(k.strip() for k in public_keys) or NO_KEY
        seed = {f"{SEED}/meta-data": f"instance-id: {container}\nlocal-hostname: {container}\n".encode(),
                f"{SEED}/user-data": (user_data or "#cloud-config\n{}\n").encode()}
        host, = practice_hosts.start_hosts([container], keys, label=self.label, image=self.image,
                                           timeout=self.boot_timeout, files={container: seed},
                                           until_ssh=True)  # a droplet is active while cloud-init still runs
        return host.address

    def stop_ssh(self, container: str) -> None:
        """Fault: the machine runs, but nothing answers on port 22 any more."""
        run(["docker", "exec", container, "systemctl", "stop", "ssh.service", "ssh.socket"], timeout=60, check=False)

    def remove(self, container: str) -> None:
        run(["docker", "rm", "-f", "-v", container], timeout=120, check=False)
        run(["docker", "volume", "rm", "-f", f"{container}-docker"], timeout=60, check=False)

    def remove_all(self) -> None:
        practice_hosts.remove_hosts(self.label)

    def containers(self) -> list[str]:
        """Names of this stand-in's machine containers that exist (running or not), as `docker ps -a` shows."""
        out = run(["docker", "ps", "-a", "--filter", f"label={practice_hosts.LABEL_KEY}={self.label}",
                   "--format", "{{.Names}}"], timeout=30).stdout
        return sorted(out.split())
