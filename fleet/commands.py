"""Docker command lines, as argv lists (tested as plain data).

Nothing here runs anything or builds a shell string; the SSH layer quotes
each argv once with ``shlex.join``.
"""
from __future__ import annotations

from fleet.seats import LABEL, Seat


def docker_run(name: str, image: str, labels: dict[str, str], args: list[str]) -> tuple[str, ...]:
    """``docker run`` of a long-lived fleet container: detached, restarted with the host, labelled."""
    argv = ["docker", "run", "--detach", "--name", name, "--restart", "unless-stopped"]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    return (*argv, *args, image)


def seat_labels(seat: Seat) -> dict[str, str]:
    return {LABEL: seat.fleet, "fleet.service": seat.service.name, "fleet.seat": str(seat.number)}


def seat_args(seat: Seat, network: str, *, publish: bool) -> list[str]:
    """Limits, network, port and env file of one seat; no secret in argv.

    Behind the TLS proxy a seat publishes nothing: only the proxy can reach it,
    over the fleet's private network.
    """
    s = seat.service
    args = ["--network", network, "--hostname", seat.container]
    if s.memory_bytes:
        # swap equal to memory: the cap the teacher asked for is the real cap
        args += ["--memory", str(s.memory_bytes), "--memory-swap", str(s.memory_bytes)]
    if s.cpus:
        args += ["--cpus", f"{s.cpus:g}"]
    if s.cpuset:
        args += ["--cpuset-cpus", s.cpuset]
    if publish:
        args += ["--publish", f"{seat.host_port}:{s.container_port}"]
    if s.work_dir:  # the students' files outlive the container: restarts, resets and upgrades keep them
        args += ["--volume", f"{seat.volume}:{s.work_dir}"]
    return [*args, "--env-file", seat.env_path]


def network_create(name: str, fleet: str) -> tuple[str, ...]:
    return ("docker", "network", "create", "--label", f"{LABEL}={fleet}", name)


def network_remove(name: str) -> tuple[str, ...]:
    return ("sh", "-c", 'docker network rm "$1" >/dev/null 2>&1 || true', "sh", name)


def volume_remove(*names: str) -> tuple[str, ...]:
    return ("sh", "-c", 'docker volume rm --force "$@" >/dev/null', "sh", *names)


def remove(container: str) -> tuple[str, ...]:
    return ("docker", "rm", "--force", container)


def start(container: str) -> tuple[str, ...]:
    return ("docker", "start", container)


def pull(image: str) -> tuple[str, ...]:
    return ("docker", "pull", "--quiet", image)


def remove_files(*paths: str) -> tuple[str, ...]:
    return ("rm", "-f", "--", *paths)


def remove_tree(path: str) -> tuple[str, ...]:
    return ("rm", "-rf", "--", path)
