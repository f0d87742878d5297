"""Kinds of seat: what fleet knows about the server image a service runs.

A kind carries every decision that depends on what the image is: the port it
listens on, the variable that receives the seat's secret, the link that logs a
student in, how to tell that the seat answers, and where the students' files
live. Adding a kind is one entry in :data:`KINDS`; nothing else in fleet asks
``kind == ...``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ready:
    """How a seat shows that it answers, asked through the path a student uses.

    ``expect``: ``token`` (the secret sent as ``Authorization: token ...``
    must get 200), ``ok`` (200-399) or ``any`` (any HTTP answer below 500:
    the server took the connection and answered; a bare TCP connect proves
    nothing here, since the TLS proxy and Docker's port proxy accept every
    connection themselves, and the proxy says 502 while the seat refuses).
    """

    path: str = "/"
    expect: str = "ok"
    timeout: int = 60  # seconds a new seat gets to answer


@dataclass(frozen=True)
class Kind:
    name: str
    port: int | None  # the port it listens on inside the container; None: the inventory must say
    secret_env: str | None  # the variable that receives the seat's generated secret; None: the inventory must say
    login_user: str  # the user name students log in with ("" when the secret alone logs in)
    workdir: str | None  # the students' files: kept in a volume per seat
    exec_user: str  # who owns those files ("" = the image's own USER)
    ready: Ready
    secret_word: str = "Password"  # what the card calls the secret
    token_in_link: bool = False  # the login link carries the secret (?token=...)
    image: str | None = None  # the image a service of this kind runs unless it names one; None: it must
    memory: str | None = None  # each seat's memory limit unless the service says (`memory: none`: no limit)
    cpus: float | None = None  # each seat's CPU limit unless the service says (`cpus: none`: no limit)

    def login_link(self, base: str, secret: str | None) -> str:
        """The address a student opens; with the secret, the one-click login link where the kind has one."""
        return f"{base}?token={secret}" if secret and self.token_in_link else base


# Default images, pinned so that every host of a class, and next term's re-run, get the same software
# (a moving tag like `latest` would give hosts provisioned a week apart different versions). The newest
# releases when this was written: Jupyter's weekly scipy-notebook build of 2026-09-01 (Python 3.13,
# JupyterLab 4.6, Notebook 7.6; multi-arch) and Rocker's R 4.6.1 with RStudio Server 2026.08.1.
JUPYTER_IMAGE = "quay.io/jupyter/scipy-notebook:2026-09-01"
RSTUDIO_IMAGE = "rocker/rstudio:4.6.1"
# Default limits per seat: one student's runaway loop or huge data frame must not take the memory or
# every CPU of the host the other students share. 2 GiB holds pandas/numpy or tidyverse work on
# classroom-sized data; one CPU is all a single kernel or R session uses anyway.
SEAT_MEMORY, SEAT_CPUS = "2g", 1.0

KINDS: dict[str, Kind] = {
    # docker-stacks images run as jovyan (uid 1000) with their home as the notebook root;
    # /api/status answers 200 only with the token, so readiness proves the login works too
    "jupyter": Kind("jupyter", 8888, "JUPYTER_TOKEN", "", "/home/jovyan", "", Ready("/api/status", "token", 120),
                    secret_word="Token", token_in_link=True, image=JUPYTER_IMAGE, memory=SEAT_MEMORY, cpus=SEAT_CPUS),
    # rocker images run as root and serve the home of user rstudio; the sign-in page answers 200 once up
    "rstudio": Kind("rstudio", 8787, "PASSWORD", "rstudio", "/home/rstudio", "rstudio", Ready("/", "ok", 180),
                    image=RSTUDIO_IMAGE, memory=SEAT_MEMORY, cpus=SEAT_CPUS),
    # anything else: the inventory names image, port and secret variable; ready once it answers HTTP (or at
    # `health:`); no default limits, since fleet cannot know what a database or a web app needs
    "generic": Kind("generic", None, None, "", None, "", Ready("/", "any", 60)),
}


def kind(name: str) -> Kind:
    return KINDS[name]
