"""The commands ``mode: hub`` runs on the hosts, as argv lists; and the hub image's Dockerfile. Pure.

Measured on real test hosts (three nodes, docker.io 26 on the manager); the
order the fleet backend runs them in is in :data:`ORDER`. Secrets never appear
in an argv: the join token travels on stdin (:func:`swarm_join_argv`).
These move to fleet/commands.py on integration.
"""
from __future__ import annotations

from fleet.hub.config import HubSettings

SWARM_PORT = 2377
DOCKER_SOCKET = "/var/run/docker.sock"

# The upstream images and pins for real servers (fleet builds the hub image ON the manager from them).
JUPYTERHUB_IMAGE = "quay.io/jupyterhub/jupyterhub:6.1.1"  # official image of the release (tag unchecked: no registry)
DOCKERSPAWNER = "dockerspawner==14.0.0"
IDLE_CULLER = "jupyterhub-idle-culler==2.0.0"

ORDER = """\
manager:  swarm_state_argv -> (inactive) swarm_init_argv
manager:  join_token_argv                      (stdout: the token; keep it in memory only)
workers:  swarm_state_argv -> (inactive) swarm_join_argv, token on stdin
manager:  network_inspect_argv -> (missing) network_create_argv (subnet, gateway, ip-range: fixed addresses)
every node: images present (relay / pull) for the students' image; the manager the hub image
manager:  (real servers) hub_build_argv with hub_dockerfile() on stdin
manager:  upload config dir (jupyterhub_config.py, fleet_hub*.py 0644; passwords 0600), each file
          written to a temporary name and renamed (the hub mounts the directory, so it sees the new file)
manager:  volume_create_argv(data)             (idempotent)
manager:  hub_run_argv (replace the container when its spec changed; hub_restart_argv when only
          jupyterhub_config.py changed; nothing when only the passwords file changed)
manager:  Caddy: the fleet's proxy container, proxy_connect_argv once, its site caddy_site()
manager:  user_services_argv -> orphan_services -> service_rm_argv for logins no longer in the roster
          (after the hub restarted with the new roster: it deletes those users at start-up)
"""


def swarm_state_argv() -> list[str]:
    """Prints the node's swarm state (inactive / active / pending / error) and whether it is a manager."""
    return ["docker", "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.NodeID}}"]


def swarm_init_argv(advertise_addr: str) -> list[str]:
    """Make the manager (the host that runs the hub and Caddy) a one-node swarm."""
    return ["docker", "swarm", "init", "--advertise-addr", advertise_addr]


def join_token_argv() -> list[str]:
    """On the manager: print the workers' join token (a secret: keep it off argv and logs)."""
    return ["docker", "swarm", "join-token", "-q", "worker"]


def swarm_join_argv(manager_addr: str) -> list[str]:
    """On a worker: join the swarm; the token is read from stdin, so it never appears in a process list."""
    return ["sh", "-c", 'exec docker swarm join --token "$(cat)" "$1"', "sh", f"{manager_addr}:{SWARM_PORT}"]


def nodes_argv() -> list[str]:
    """On the manager: every node's id, hostname, state, availability, role and address."""
    return ["docker", "node", "ls", "--format",
            "{{.ID}} {{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}"]


def network_inspect_argv(s: HubSettings) -> list[str]:
    return ["docker", "network", "inspect", "--format", "{{.Driver}} {{.Attachable}}", s.network]


def network_create_argv(s: HubSettings, *, encrypted: bool = False) -> list[str]:
    """The attachable overlay of the hub and the servers (``encrypted``: IPsec between nodes, see the notes)."""
    argv = ["docker", "network", "create", "--driver", "overlay", "--attachable", "--label", f"fleet.name={s.fleet}",
            "--subnet", s.subnet, "--gateway", s.gateway, "--ip-range", s.ip_range]
    if encrypted:
        argv += ["--opt", "encrypted"]
    return [*argv, s.network]


def volume_create_argv(s: HubSettings) -> list[str]:
    """The hub's data volume on the manager (sqlite database, cookie secret); idempotent."""
    return ["docker", "volume", "create", "--label", f"fleet.name={s.fleet}", s.data_volume]


def hub_run_argv(s: HubSettings, image: str, config_dir: str, *, publish: str | None = None,
                 memory: str = "512m") -> list[str]:
    """``docker run`` of the hub: a plain container on the overlay on the manager.

    ``config_dir`` is the manager's directory fleet uploaded (config, modules,
    passwords), mounted read-only as a directory (a file replaced by rename is
    then seen, which a single-file bind would not). The hub talks to the
    manager's Docker socket. ``publish`` (e.g. ``"127.0.0.1:8000"``) publishes
    the proxy port on the manager for a Caddy running on the host network; the
    recommended Caddy container joins the overlay instead and needs none.
    """
    argv = ["docker", "run", "-d", "--name", s.hub_name, "--hostname", s.hub_name,
            "--restart", "unless-stopped", "--network", s.network, "--ip", s.hub_ip,
            "--label", f"fleet.name={s.fleet}", "--label", "fleet.role=hub",
            "--memory", memory, "--memory-swap", memory,
            "-v", f"{DOCKER_SOCKET}:{DOCKER_SOCKET}",
            "-v", f"{s.data_volume}:{s.data_dir}",
            "-v", f"{config_dir}:{s.hub_dir}:ro",
            "--tmpfs", "/tmp",
            "-e", f"PYTHONPATH={s.hub_dir}",
            "-w", s.data_dir]
    if publish:
        argv += ["-p", f"{publish}:{s.proxy_port}"]
    return [*argv, image, "jupyterhub", "-f", s.config_file]


def proxy_connect_argv(s: HubSettings, container: str) -> list[str]:
    """Put the fleet's Caddy container on the overlay at its fixed address; it then forwards to
    ``{s.hub_ip}:{s.proxy_port}`` and the hub publishes no port at all (the recommended wiring)."""
    return ["docker", "network", "connect", "--ip", s.proxy_ip, s.network, container]


def caddy_site(s: HubSettings, address: str) -> str:
    """The Caddyfile site block for the hub (TLS as the fleet's proxy sets it up: here ``tls internal``)."""
    return f"{address} {{\n\ttls internal\n\treverse_proxy {s.hub_ip}:{s.proxy_port}\n}}\n"


def hub_restart_argv(s: HubSettings) -> list[str]:
    """After jupyterhub_config.py changed (e.g. the roster): servers keep running (cleanup_servers False)."""
    return ["docker", "restart", "-t", "10", s.hub_name]


def user_services_argv(s: HubSettings) -> list[str]:
    """On the manager: ``LOGIN SERVICE`` per student server of this fleet (labels set by FleetSwarmSpawner).

    ``docker service ls --format`` cannot show labels, so the listed ids go to ``docker service inspect``.
    """
    inspect = 'docker service inspect --format "{{index .Spec.Labels \\"fleet.hub.user\\"}} {{.Spec.Name}}"'
    return ["sh", "-c", 'docker service ls -q --filter "label=fleet.name=$1" --filter label=fleet.hub.user'
            f" | xargs -r {inspect}", "sh", s.fleet]


def orphan_services(s: HubSettings, listed: str) -> list[str]:
    """From user_services_argv's output: the services of logins no longer in the roster (to remove)."""
    keep = set(s.users) | ({s.admin} if s.admin else set())
    orphans = []
    for line in listed.splitlines():
        login, _, service = line.strip().partition(" ")
        if service and login and login not in keep:
            orphans.append(service)
    return orphans


def service_rm_argv(services: list[str]) -> list[str]:
    return ["docker", "service", "rm", *services]


def service_inspect_argv(service: str) -> list[str]:
    """Limits, reservations, constraints and endpoint mode of one student's service."""
    return ["docker", "service", "inspect", "--format",
            "{{json .Spec.TaskTemplate.Resources}} {{json .Spec.TaskTemplate.Placement.Constraints}} "
            "{{.Spec.EndpointSpec.Mode}}", service]


def hub_dockerfile(base: str = JUPYTERHUB_IMAGE, packages: tuple[str, ...] = (DOCKERSPAWNER, IDLE_CULLER)) -> str:
    """The hub image fleet builds on a real manager (``docker build -t TAG -`` with this on stdin).

    The official image already has JupyterHub and configurable-http-proxy; this
    adds the pinned spawner and culler. Not built here: no registry is
    reachable on the development machine (the tests use images/hub instead).
    """
    for p in (base, *packages):
        if not p or any(c.isspace() or c in "\\\"'`$;&|" for c in p):
            raise ValueError(f"{p!r} cannot go into the Dockerfile")
    return (f"FROM {base}\n"
            f"RUN python3 -m pip install --no-cache-dir {' '.join(packages)}\n"
            'CMD ["jupyterhub", "-f", "/srv/fleet/jupyterhub_config.py"]\n')


def hub_build_argv(tag: str) -> list[str]:
    """Build the hub image on the manager from the Dockerfile on stdin (no build context needed)."""
    return ["docker", "build", "-q", "-t", tag, "-"]


def swarm_leave_argv() -> list[str]:
    """Teardown: each node leaves (workers first, the manager last)."""
    return ["docker", "swarm", "leave", "--force"]
