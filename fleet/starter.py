"""The starter inventory `fab init` writes: every option, its default and why, as YAML comments.

Pure text. The defaults in it are read from the schema and the kinds, so the
file never tells a teacher a default fleet does not use. Only what a class
must decide is left uncommented: the fleet's name, the servers (placeholders
that `fab check` refuses until they are replaced) and one Jupyter service.
"""
from __future__ import annotations

import re
from typing import get_args

from fleet.inventory.defaults import FIRST_PORT
from fleet.inventory.model import NAME_RE, DockerSettings, InventoryModel, Timeouts
from fleet.inventory.ssh import SSHSettings
from fleet.inventory.tls import ProxySettings, TLSSettings
from fleet.kinds import KINDS

PLACEHOLDER = "<address of server {n}>"  # not an address: `fab check` says so until it is replaced
TIMEOUTS = {  # why each timeout is there; a new one is listed with its default even before it is described here
    "connect": "TCP, SSH handshake and login together",
    "command": "an ordinary remote command",
    "install": "a package install",
    "lock": "waiting for the dpkg/apt lock",
    "cloud_init": "waiting for cloud-init on a fresh server",
    "push": "sending or pulling an image",
    "droplet": "a new droplet becoming usable (and teardown waiting until none is left)",
}


def fleet_name(stem: str) -> str:
    """A fleet name from the file's name: ``Stats 101.yml`` → ``stats-101``; ``lab`` when nothing is left."""
    name = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:32].strip("-")
    name = name.lstrip("0123456789-")
    return name if NAME_RE.match(name) else "lab"


def text(stem: str = "lab") -> str:
    """The starter inventory for a file named ``stem``.yml."""
    jupyter, rstudio = KINDS["jupyter"], KINDS["rstudio"]
    ssh, docker, proxy, timeouts = SSHSettings(), DockerSettings(), ProxySettings(), Timeouts()
    parallel = InventoryModel.model_fields["parallel"].default
    timeout_lines = "\n".join(f"#   {f'{name}: {getattr(timeouts, name)}':<22} # {TIMEOUTS.get(name, 'seconds')}"
                              for name in Timeouts.model_fields)
    tls = TLSSettings.model_fields["mode"].default
    tls_modes = " | ".join(get_args(TLSSettings.model_fields["mode"].annotation))
    return f"""\
# A fleet inventory: the servers of one class and what runs on them.
# Replace the two addresses under `hosts:`, then
#   fab check     --hosts {stem}.yml    # validate, offline: every problem at once, with its line
#   fab plan      --hosts {stem}.yml    # what would change (and every default used), changes nothing
#   fab provision --hosts {stem}.yml    # do it
#   fab handout   --hosts {stem}.yml    # addresses and passwords for the students
# A commented line shows an option with the value fleet uses when it is left out; remove the `#` to change it.

name: {fleet_name(stem)}                  # required: 1-32 of a-z 0-9 -; names the containers, labels and state

hosts:                     # the servers, at least one (or a `digitalocean:` block below instead)
  - {PLACEHOLDER.format(n=1)}  # an IP address or DNS name; also user@address:port
  - {PLACEHOLDER.format(n=2)}
  # - {{address: 192.0.2.12, user: ubuntu, port: 2222, key: other_key, name: lab3.example.org}}
  #   user, port, key: this server's own login; name: its DNS name, for URLs and certificates

# ssh:                     # how fleet logs in to every host that does not say otherwise
#   user: {ssh.user}             # a non-root user needs sudo (--prompt-for-sudo-password if it asks)
#   port: {ssh.port}
#   key: ~/.ssh/id_ed25519 # default: ssh-agent and ~/.ssh/config; a relative path is relative to this file

services:                  # what every host runs: one container per seat, each with its own token or password
  - name: notebook         # a-z 0-9 -, unique; names the seats: {fleet_name(stem)}-notebook-1, -2, ...
    # kind: jupyter        # jupyter | rstudio | generic: the kind knows the port, the login and the files
    # image: {jupyter.image}   # pinned so every host runs the same software;
    #                      # rstudio: {rstudio.image}; generic: required
    seats: 1               # containers per host (default 1); a class of 30 on 3 hosts: 10
    # port: {jupyter.port}           # inside the container; jupyter {jupyter.port}, rstudio {rstudio.port}, generic: required
    # publish: {FIRST_PORT}        # host port of seat 1, seat N gets publish + N - 1; default: the first free
    #                      # block from {FIRST_PORT} that no other service and no SSH port uses
    # memory: {jupyter.memory}          # each seat's limit, so one student cannot starve the others; `none`: no limit
    # cpus: {jupyter.cpus:g}              # each seat's CPU share (or cpuset: "0-1"); `none`: no limit (generic: none by default)
    # env: {{TZ: Europe/Amsterdam}}   # the seats' environment; values are taken as written
    # push: false          # true: send this computer's copy of the image instead of pulling it on every host
    # workdir: {jupyter.workdir} # the students' files, kept in a volume per seat; default per kind
    # user: jovyan         # who owns them in the container; default per kind
    # health: /api/status  # the path that answers once a seat is up; default per kind
    # ready_timeout: {jupyter.ready.timeout}   # seconds a new seat gets to answer; default per kind
    # secret_env: TOKEN    # generic only, and required there: the variable that receives the seat's password
    # spares: 0            # extra seats per host, started and held for `fab move` (a broken seat or host)
    # groups: {{instructor: {{memory: 4g, cpus: 2}}}}   # a roster group's own limits on its students' seats
    # data: {{src: ./datasets, mount: {jupyter.workdir}/data}}   # this service's course data, instead of the fleet's
  # - name: rstudio        # a second service: its seats get the next free ports
  #   kind: rstudio

# roster: students.csv     # the students (a CSV file, column `name`, optional `group`) or a list [Ana, Ben]
# data: {{src: ./datasets, mount: {jupyter.workdir}/data}}   # course data: sent once per host, read-only in every seat
#                          # (src relative to this file; mount default: `data` in each seat's work folder)
# handout: {{title: Statistics 101, certificate_note: ""}}   # the printable cards: heading; "" drops the https note
# mode: seats              # seats: fixed servers per host | hub: the whole class at one address (JupyterHub on Swarm)
# hub: {{idle_timeout: 30m, admin: teacher, port: 443}}   # mode: hub only: see README "The whole class at one address"
# tls: {tls:<18} # how students reach the seats: {tls_modes} | {{domain: lab.example.org, email: you@example.org}}
# proxy: {{image: {proxy.image}, push: {str(proxy.push).lower()}}}   # the HTTPS proxy each host runs in front of the seats
# firewall: false          # true: ufw/firewalld allow only SSH and the seat ports
# docker: {{source: {docker.source}}}   # official: Docker's own repository | distro: the distribution's package
# parallel: {parallel}             # hosts worked on at once, 1-200
# timeouts:                # seconds; every remote wait is bounded
{timeout_lines}
# digitalocean:            # rent the servers for the day instead (token: DIGITALOCEAN_ACCESS_TOKEN, never here)
#   count: 3
#   region: ams3
#   size: s-2vcpu-4gb
#   image: ubuntu-24-04-x64
#   ssh_key: ~/.ssh/id_ed25519.pub   # the public key; fleet logs in with the private key beside it
"""
