"""Files fleet wrote on a host (env files, the proxy's configuration), and the named volumes it made."""
from __future__ import annotations


def volume_remove(*names: str) -> tuple[str, ...]:
    return ("sh", "-c", 'docker volume rm --force "$@" >/dev/null', "sh", *names)


def remove_files(*paths: str) -> tuple[str, ...]:
    return ("rm", "-f", "--", *paths)


def remove_tree(path: str) -> tuple[str, ...]:
    return ("rm", "-rf", "--", path)
