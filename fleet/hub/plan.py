"""plan for ``mode: hub``: what the manager and each worker need, from their facts. Pure.

The manager forms the swarm, holds the overlay network, runs the hub (a plain
container with a fixed address on the overlay, its config and modules
mounted from files fleet writes) and the fleet's Caddy in front of it (on the
overlay too, at its own fixed address), so nothing of the hub or of a
student's server is reachable except through Caddy's HTTPS. A worker needs
only to have joined. Every node needs Docker and the students' image (the
image steps are the seats planner's: fleet/plan.py).
"""
from __future__ import annotations

import hashlib

from fleet import desired, proxy
from fleet.commands import swarm
from fleet.desired import Wanted
from fleet.errors import InputError
from fleet.facts import Facts
from fleet.hub import auth, image
from fleet.hub.config import HubSettings, render_config
from fleet.hub.facts import SwarmFacts
from fleet.inventory import Host, Inventory
from fleet.plan import container_steps
from fleet.seats import LABEL
from fleet.steps import Run, Step, Upload

HUB_MEMORY = "512m"  # measured: 140 MiB idle, ~160 MiB with servers running
JOIN_BODY = "/etc/fleet/{fleet}/swarm-join.json"  # root-only, removed by the join itself


def config_dir(fleet: str) -> str:
    """The manager's folder of the hub's config, modules and hash file (mounted read-only at /srv/fleet)."""
    return f"/etc/fleet/{fleet}/hub"


def settings(inventory: Inventory, logins: list[str], admin: str, public_url: str, *, workers: bool) -> HubSettings:
    """The hub's settings from the inventory: the one jupyter service's image and limits, the hub section."""
    svc = inventory.services[0]
    hub = inventory.model.hub
    memory = svc.memory_bytes or 2 << 30
    cpus = svc.cpus or 1.0
    return HubSettings(
        fleet=inventory.name, image=svc.image, users=tuple(logins), admin=admin,
        mem_limit=memory, mem_reservation=memory, cpu_limit=cpus, cpu_reservation=cpus,
        idle_timeout=hub.idle_seconds, start_timeout=hub.start_timeout,
        # with workers, the manager keeps its room for the hub and Caddy
        placement=("node.role==worker",) if workers else (), public_url=public_url,
        default_url="/lab" if svc.image.startswith(("quay.io/jupyter/", "jupyter/")) else "")


def hub_files(s: HubSettings) -> list[Upload]:
    """What the hub container's spec covers: a change to any replaces the hub (servers keep running)."""
    d = config_dir(s.fleet)
    files = [Upload("write the hub's jupyterhub_config.py", f"{d}/jupyterhub_config.py", render_config(s).encode(), 0o644)]
    for name, text in sorted(auth.module_files().items()):
        files.append(Upload(f"write the hub's {name}", f"{d}/{name}", text.encode(), 0o644))
    return files


def passwords_file(fleet: str, hashes: dict[str, str]) -> Upload:
    """The hash file (root, 0600): the hub re-reads it when it changes, so a new student needs no restart."""
    return Upload("write the hub's password hashes", f"{config_dir(fleet)}/{auth.HASH_FILE}",
                  auth.hash_file_text(hashes).encode(), 0o600)


def hub_container(inventory: Inventory, s: HubSettings) -> Wanted:
    hub = inventory.model.hub
    tag = hub.image or local_build_tag()
    args = ["--hostname", s.hub_name, "--network", s.network, "--ip", s.hub_ip,
            "--memory", HUB_MEMORY, "--memory-swap", HUB_MEMORY,
            "--volume", f"{swarm.SOCKET}:{swarm.SOCKET}", "--volume", f"{s.data_volume}:{s.data_dir}",
            "--volume", f"{config_dir(s.fleet)}:{s.hub_dir}:ro", "--tmpfs", "/tmp",
            "--env", f"PYTHONPATH={s.hub_dir}", "--workdir", s.data_dir]
    return desired.wanted(s.hub_name, tag, {LABEL: s.fleet, "fleet.role": "hub"}, args, hub_files(s),
                          push=hub.push, host_ports=(), command=("jupyterhub", "-f", s.config_file))


def proxy_container(inventory: Inventory, host: Host, s: HubSettings, cert: proxy.Certificate) -> Wanted:
    """The fleet's Caddy on the manager: the class address, forwarded to the hub over the overlay."""
    fleet, port = inventory.name, inventory.model.hub.port
    caddyfile = proxy.caddyfile(inventory, host, [proxy.Site(port, f"{s.hub_ip}:{s.proxy_port}")], cert)
    path = f"/etc/fleet/{fleet}/Caddyfile"
    ports = (port, *[p for p in cert.ports if p != port])
    args = []  # on Docker's default bridge, where published ports work; joined to the overlay next (connect_proxy)
    for p in ports:
        args += ["--publish", f"{p}:{p}"]
    args += ["--volume", f"{proxy.data_volume(fleet)}:/data", "--volume", f"{fleet}-proxy-config:/config",
             "--volume", f"{path}:/etc/caddy/Caddyfile:ro"]
    files = [Upload("write the proxy's Caddyfile", path, caddyfile.encode(), 0o600, inventory.timeouts.command)]
    return desired.wanted(proxy.container_name(fleet), inventory.model.proxy.image, {LABEL: fleet, "fleet.role": "proxy"},
                          args, files, push=inventory.model.proxy.push, host_ports=ports)


def manager_of(inventory: Inventory, hosts: tuple[Host, ...]) -> Host:
    """The host named by ``hub.manager``, else the first one."""
    wanted = inventory.model.hub.manager
    for h in hosts:
        if wanted in (None, h.address, h.id, h.name):
            return h
    raise InputError(f"hub.manager {wanted!r} is not one of the fleet's hosts ({', '.join(h.id for h in hosts)})",
                     field="hub.manager")


# --- the hub image on a real manager ---------------------------------------------------------------

def local_build_tag() -> str:
    """The tag of the hub image fleet builds on the manager, named by what goes into it."""
    digest = hashlib.sha256(hub_dockerfile().encode()).hexdigest()[:12]
    return f"fleet-hub:{digest}"


def hub_dockerfile() -> str:
    return image.hub_dockerfile()


def build_step(inventory: Inventory) -> Run:
    """Build the hub image on the manager from the official JupyterHub image (its Dockerfile on stdin)."""
    return Run(f"build the hub image {local_build_tag()} on the manager",
               ("sh", "-c", 'printf %s "$1" | docker build -q -t "$2" -', "sh", hub_dockerfile(), local_build_tag()),
               inventory.timeouts.push)


# --- the swarm -------------------------------------------------------------------------------------

def manager_steps(inventory: Inventory, host: Host, facts: Facts, node: SwarmFacts, s: HubSettings,
                  wanted: list[Wanted], image_ids: dict[str, str], passwords: Upload) -> list[Step]:
    """The manager, after Docker and images: the swarm, the overlay, the hash file, the hub and its proxy,
    and the servers of students no longer on the roster removed."""
    t = inventory.timeouts.command
    steps: list[Step] = []
    if not node.active:
        steps.append(Run(f"form the swarm on {host.address} (docker swarm init)", swarm.init(host.address), t))
    if not node.network:
        steps.append(Run(f"create the overlay network {s.network}",
                         swarm.overlay_create(s.network, s.fleet, s.subnet, s.gateway, s.ip_range), t))
    if node.passwords != hashlib.sha256(passwords.content).hexdigest():
        steps.append(passwords)
    containers = container_steps(facts, wanted, image_ids, t)
    steps += containers
    proxy_run = [x for x in containers if isinstance(x, Run) and x.argv[:2] == ("docker", "run")
                 and proxy.container_name(s.fleet) in x.argv]
    if proxy_run:
        steps.append(Run(f"join the proxy to {s.network} at {s.proxy_ip}",
                         swarm.network_connect(s.network, proxy.container_name(s.fleet), s.proxy_ip), t))
    keep = {s.service_name(login) for login in (*s.users, *([s.admin] if s.admin else []))}
    gone = sorted(name for name in node.services if name not in keep)
    if gone:
        steps.append(Run(f"stop the servers of {len(gone)} student(s) no longer on the roster",
                         swarm.services_rm(*gone), t))
    return steps


def worker_steps(inventory: Inventory, node: SwarmFacts, manager: str, advertise: str, token: str) -> list[Step]:
    """A worker joins the manager's swarm (the token in a root-only file its join removes); nothing when it has."""
    if node.active:
        return []
    path = JOIN_BODY.format(fleet=inventory.name)
    t = inventory.timeouts.command
    return [Upload("write the swarm's join request (root only)", path, swarm.join_body(token, manager, advertise), 0o600, t),
            Run(f"join the swarm of {manager}", swarm.join(path), t)]



# --- teardown --------------------------------------------------------------------------------------

def stop_servers_steps(inventory: Inventory) -> list[Step]:
    """First, on the manager: every student's server (Swarm removes their containers on the workers)."""
    return [Run("stop every student's server", swarm.services_of(inventory.name), inventory.timeouts.command)]


def teardown_steps(inventory: Inventory, facts: Facts, *, manager: bool, keep_work: bool) -> list[Step]:
    """A node's part of teardown, after the servers are stopped: the fleet's containers (hub and proxy on the
    manager), the overlay, the volumes (the students' files and the hub's database only without ``keep_work``),
    the files fleet wrote, and the swarm: each node leaves (the caller runs the manager last)."""
    from fleet import commands

    fleet, t = inventory.name, inventory.timeouts.command
    steps: list[Step] = [Run(f"remove {c}", commands.remove(c), t) for c in sorted(facts.containers)]
    if not keep_work:
        steps.append(Run("remove the students' files (their volumes)", swarm.student_volumes_remove(fleet), t))
    if manager:
        steps.append(Run("remove the overlay network", commands.network_remove(f"{fleet}-hubnet"), t))
        gone = [proxy.data_volume(fleet), f"{fleet}-proxy-config"] + ([] if keep_work else [f"{fleet}-hub-data"])
        steps.append(Run("remove the fleet's volumes", commands.volume_remove(*gone), t))
    steps.append(Run("remove the files fleet wrote", commands.remove_tree(f"/etc/fleet/{fleet}"), t))
    steps.append(Run("leave the swarm", swarm.leave(), t))
    return steps
