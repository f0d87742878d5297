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

    def login_link(self, base: str, secret: str | None) -> str:
        """The address a student opens; with the secret, the one-click login link where the kind has one."""
        return f"{base}?token={secret}" if secret and self.token_in_link else base


KINDS: dict[str, Kind] = {
    # docker-stacks images run as jovyan (uid 1000) with their home as the notebook root;
    # /api/status answers 200 only with the token, so readiness proves the login works too
    "jupyter": Kind("jupyter", 8888, "JUPYTER_TOKEN", "", "/home/jovyan", "", Ready("/api/status", "token", 120),
                    secret_word="Token", token_in_link=True),
    # rocker images run as root and serve the home of user rstudio; the sign-in page answers 200 once up
    "rstudio": Kind("rstudio", 8787, "PASSWORD", "rstudio", "/home/rstudio", "rstudio", Ready("/", "ok", 180)),
    # anything else: the inventory names port and secret variable; ready once it answers HTTP (or at `health:`)
    "generic": Kind("generic", None, None, "", None, "", Ready("/", "any", 60)),
}


def kind(name: str) -> Kind:
    return KINDS[name]
