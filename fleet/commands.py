"""Docker command lines for seats, as argv lists (tested as plain data).

Nothing here runs anything or builds a shell string; the SSH layer quotes
each argv once with ``shlex.join``.
"""
from __future__ import annotations

from fleet.seats import LABEL, Seat


def labels(seat: Seat, spec: str) -> dict[str, str]:
    return {
        LABEL: seat.fleet,
        "fleet.service": seat.service.name,
        "fleet.seat": str(seat.number),
        "fleet.spec": spec,
    }


def run_seat(seat: Seat, spec: str) -> tuple[str, ...]:
    """``docker run`` for one seat: limits, restart policy, port, env file; no secret in argv."""
    s = seat.service
    argv = ["docker", "run", "--detach", "--name", seat.container, "--restart", "unless-stopped"]
    for key, value in labels(seat, spec).items():
        argv += ["--label", f"{key}={value}"]
    if s.memory_bytes:
        # swap equal to memory: the cap the teacher asked for is the real cap
        argv += ["--memory", str(s.memory_bytes), "--memory-swap", str(s.memory_bytes)]
    if s.cpus:
        argv += ["--cpus", f"{s.cpus:g}"]
    if s.cpuset:
        argv += ["--cpuset-cpus", s.cpuset]
    argv += ["--publish", f"{seat.host_port}:{s.container_port}", "--env-file", seat.env_path, s.image]
    return tuple(argv)


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
