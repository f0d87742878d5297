"""Images: pulled on a host, or sent from this computer (docker save here, docker load there)."""
from __future__ import annotations


def pull(image: str) -> tuple[str, ...]:
    return ("docker", "pull", "--quiet", image)


def save(image: str) -> tuple[str, ...]:
    """Run on this computer: the image as a tar stream on stdout."""
    return ("docker", "save", image)


def load() -> tuple[str, ...]:
    return ("docker", "load")


def inspect_local(image: str, field: str) -> tuple[str, ...]:
    """Run on this computer: one field of an image (``Id``, ``Size``)."""
    return ("docker", "image", "inspect", "--format", "{{." + field + "}}", image)
