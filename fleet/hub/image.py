"""The hub's image on a real manager: the official JupyterHub image with the pinned spawner and culler. Pure.

fleet builds it on the manager (``docker build -`` with this Dockerfile on stdin,
fleet/hub/plan.py build_step) unless the inventory names an image; the tests
send their own (images/hub) since no registry is reachable from here.
"""
from __future__ import annotations

JUPYTERHUB_IMAGE = "quay.io/jupyterhub/jupyterhub:6.1.1"  # the official image of the release (tag unchecked: no registry)
DOCKERSPAWNER = "dockerspawner==14.0.0"
IDLE_CULLER = "jupyterhub-idle-culler==2.0.0"


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
