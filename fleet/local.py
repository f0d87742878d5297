"""This computer: the images it sends (their ids and sizes), names it resolves, its SSH configuration."""
from __future__ import annotations

import socket
import subprocess
import threading

from fabric import Config

from fleet.commands import images
from fleet.errors import HostError


def local_image_id(image: str) -> str:
    """The controller's id of an image it will push; a clear error if it has none."""
    try:
        out = subprocess.run(images.inspect_local(image, "Id"),
                             capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise HostError("`push: true` needs Docker on this computer, and the docker command was not found") from None
    except subprocess.TimeoutExpired:
        raise HostError("`docker image inspect` on this computer did not answer within 30 s; is Docker running?") from None
    if out.returncode != 0:
        raise HostError(f"image {image} is not on this computer (push: true sends the local copy); build or pull it first")
    return out.stdout.strip()


def local_image_size(image: str) -> int:
    """The controller's size of an image in bytes (about what docker save writes); 0 when unknown."""
    try:
        out = subprocess.run(images.inspect_local(image, "Size"),
                             capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return 0
    return int(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip().isdigit() else 0


def resolve(name: str, timeout: float = 5.0) -> list[str]:
    """The IP addresses ``name`` resolves to on this computer, [] when it does not within ``timeout`` seconds."""
    result: list[str] = []

    def ask() -> None:
        try:
            result.extend(dict.fromkeys(str(info[4][0]) for info in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)))
        except (OSError, UnicodeError):
            pass

    worker = threading.Thread(target=ask, daemon=True)  # getaddrinfo has no timeout of its own
    worker.start()
    worker.join(timeout)
    return list(result) if not worker.is_alive() else []


def config_hostname(address: str) -> str:
    """The HostName the SSH configuration (~/.ssh/config, /etc/ssh/ssh_config) gives ``address``, or ``address``."""
    try:
        return str(Config().base_ssh_config.lookup(address).get("hostname") or address)
    except Exception:  # noqa: BLE001 - a broken ssh config is the SSH connection's to report, not this lookup's
        return address
