"""What should run on a host: every container with its files, as plain data.

A seat container and the TLS proxy are the same thing to the planner: a name,
an image, a ``docker run`` argv and the files it needs. Their ``spec`` is a
digest of exactly that (argv, image, file contents), so any change to what
shapes a container (a limit, a port, an env value, a new credential, a new
Caddyfile) replaces it, and nothing else does.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from fleet import commands, coursedata, proxy
from fleet.inventory import Host, Inventory
from fleet.seats import LABEL, Seat, expand, network_name
from fleet.steps import Upload


@dataclass(frozen=True)
class Wanted:
    """One container wanted on one host."""

    name: str
    image: str
    run: tuple[str, ...]  # the full docker run argv, spec label included
    files: tuple[Upload, ...]  # written (mode 0600, root) before the container starts
    spec: str
    push: bool  # the image comes from this computer (docker save | docker load)
    host_ports: tuple[int, ...]
    seat: Seat | None = None  # None for the proxy


def wanted(name: str, image: str, labels: dict[str, str], args: list[str], files: list[Upload], *,
           push: bool, host_ports: tuple[int, ...], seat: Seat | None = None, command: tuple[str, ...] = ()) -> Wanted:
    shape = [image, labels, args, [(f.path, f.mode, hashlib.sha256(f.content).hexdigest()) for f in files]]
    digest = hashlib.sha256(json.dumps(shape + ([list(command)] if command else [])).encode())
    spec = digest.hexdigest()[:16]
    run = commands.docker_run(name, image, {**labels, "fleet.spec": spec}, args, command)
    return Wanted(name, image, run, tuple(files), spec, push, host_ports, seat)


def seat_container(inventory: Inventory, seat: Seat, secret: str, group: str | None = None) -> Wanted:
    """A seat's container; ``group``: the roster group of the student sitting there, whose own limits it gets."""
    tls = inventory.model.tls.mode != "off"
    service = seat.service.for_group(group)
    if service is not seat.service:
        seat = Seat(seat.fleet, service, seat.number, seat.https)
    env = Upload(f"write env file of {seat.container}", seat.env_path, seat.env_file(secret), 0o600,
                 inventory.timeouts.command)
    args = commands.seat_args(seat, network_name(inventory.name), publish=not tls,
                              data=coursedata.mount_of(inventory, seat.service))
    return wanted(seat.container, seat.service.image, commands.seat_labels(seat), args, [env],
                  push=seat.service.push, host_ports=() if tls else (seat.host_port,), seat=seat)


def proxy_container(inventory: Inventory, host: Host, seats: list[Seat], cert: proxy.Certificate | None = None,
                    *, order_only: bool = False) -> Wanted:
    """The one TLS proxy of a host: it alone publishes the seats' ports (and 80/443 while a CA validates).

    ``cert``: where its certificate comes from this run (proxy.certificate).
    ``order_only``: the proxy started beside the running one to order a
    certificate (fleet/certs.py): the same storage and Caddyfile, only ports
    80 and 443 published, on no private network.
    """
    fleet = inventory.name
    cert = cert or proxy.certificate(inventory, host)
    caddyfile = proxy.caddyfile(inventory, host, proxy.seat_sites(seats), cert)
    path = f"/etc/fleet/{fleet}/{'acme-order.Caddyfile' if order_only else 'Caddyfile'}"
    ports = cert.ports if order_only else tuple(s.host_port for s in seats) + cert.ports
    args = [] if order_only else ["--network", network_name(fleet)]
    for port in ports:
        args += ["--publish", f"{port}:{port}"]
    args += ["--volume", f"{proxy.data_volume(fleet)}:/data", "--volume", f"{fleet}-proxy-config:/config",
             "--volume", f"{path}:/etc/caddy/Caddyfile:ro"]
    t = inventory.timeouts.command
    files = [Upload("write the proxy's Caddyfile" + (" for ordering its certificate" if order_only else ""), path,
                    caddyfile.encode(), 0o600, t)]
    if cert.mode == "acme" and cert.ca_root:
        files.append(Upload("write the root certificate of the CA's own HTTPS (tls.ca_root)",
                            proxy.ca_root_file(fleet), cert.ca_root, 0o600, t))
        args += ["--volume", f"{proxy.ca_root_file(fleet)}:{proxy.CA_ROOT_IN_CONTAINER}:ro"]
    labels = {LABEL: fleet, "fleet.role": "proxy"}
    if cert.mode == "acme":
        labels["fleet.tls"] = "acme"  # the probe tells such a proxy (80/443 published) from one of its own authority
    name = proxy.container_name(fleet)
    return wanted(f"{name}-acme" if order_only else name, inventory.model.proxy.image, labels, args, files,
                  push=inventory.model.proxy.push, host_ports=ports)


def for_host(inventory: Inventory, host: Host, secrets: dict[str, str],
             cert: proxy.Certificate | None = None, groups: dict[str, str] | None = None) -> list[Wanted]:
    """Every container of the host, seats first and the proxy last (it takes over the seats' ports).

    ``groups``: container → the roster group of the student placed there (fleet/placement.py).
    """
    seats = expand(inventory)
    groups = groups or {}
    out = [seat_container(inventory, s, secrets[s.container], groups.get(s.container)) for s in seats]
    if inventory.model.tls.mode != "off":
        out.append(proxy_container(inventory, host, seats, cert))
    return out


def volumes(fleet: str) -> list[str]:
    """Named volumes a fleet's containers create (removed by teardown)."""
    return [proxy.data_volume(fleet), f"{fleet}-proxy-config"]
