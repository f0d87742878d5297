"""docker run, rm, start, exec and logs of fleet's long-lived containers."""
from __future__ import annotations

from fleet.seats import LABEL, Seat


def docker_run(name: str, image: str, labels: dict[str, str], args: list[str],
               command: tuple[str, ...] = ()) -> tuple[str, ...]:
    """``docker run`` of a long-lived fleet container: detached, restarted with the host, labelled."""
    argv = ["docker", "run", "--detach", "--name", name, "--restart", "unless-stopped"]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    return (*argv, *args, image, *command)


def seat_labels(seat: Seat) -> dict[str, str]:
    return {LABEL: seat.fleet, "fleet.service": seat.service.name, "fleet.seat": str(seat.number)}


def seat_args(seat: Seat, network: str, *, publish: bool, data: tuple[str, str] | None = None) -> list[str]:
    """Limits, network, port, volumes and env file of one seat; no secret in argv.

    Behind the TLS proxy a seat publishes nothing: only the proxy can reach it,
    over the fleet's private network. ``data``: (the host's folder of course
    data, where the seat sees it), mounted read-only.
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
    if data:  # the teacher's files: read-only, even for root in the container
        args += ["--volume", f"{data[0]}:{data[1]}:ro"]
    return [*args, "--env-file", seat.env_path]


def remove(container: str) -> tuple[str, ...]:
    return ("docker", "rm", "--force", container)


def start(container: str) -> tuple[str, ...]:
    return ("docker", "start", container)


def exec_in(container: str, *argv: str, user: str = "", stdin: bool = False) -> tuple[str, ...]:
    """``docker exec`` in a container, as ``user`` when given (the owner of a seat's files)."""
    return ("docker", "exec", *(["--interactive"] if stdin else []), *(["--user", user] if user else []),
            container, *argv)


def run_once(image: str, volume: str, mount: str, *argv: str, user: str = "", stdin: bool = False) -> tuple[str, ...]:
    """A throw-away container of ``image`` with ``volume`` at ``mount``, running ``argv`` there as ``user``, with
    no network: how fleet reaches a student's files in mode: hub, where they live in a volume, not a seat."""
    return ("docker", "run", "--rm", *(["--interactive"] if stdin else []), *(["--user", user] if user else []),
            "--network", "none", "--volume", f"{volume}:{mount}", "--workdir", mount, "--entrypoint", argv[0],
            image, *argv[1:])


def logs(container: str, *, tail: int = 100, since: str = "") -> tuple[str, ...]:
    """A container's log with timestamps: the last ``tail`` lines, or everything after ``since``."""
    return ("docker", "logs", "--timestamps", *(["--since", since] if since else ["--tail", str(tail)]), container)
