"""Command line of the practice fleet.

    python -m practice up --count 3 --label demo --dir .demo
    python -m practice list --label demo
    python -m practice down --label demo
    python -m practice images
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from practice.hosts import host_addresses, make_keypair, remove_hosts, start_hosts
from practice.images import ensure_all_images, ensure_testhost_image, run


def _check_engine() -> None:
    if run(["docker", "info"], timeout=30, check=False).returncode != 0:
        raise RuntimeError("no Docker engine answers; run `sudo bash scripts/engine.sh` first")


def _print_hosts(hosts, key: Path | None = None) -> None:
    width = max([len(h.name) for h in hosts] + [4])
    for h in hosts:
        print(f"{h.name:<{width}}  {h.address:<15}  {h.container}")
    if hosts and key is not None:
        print(f"\nlog in: ssh -i {key} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
              f"teacher@{hosts[0].address}")


def cmd_up(args: argparse.Namespace) -> int:
    _check_engine()
    image = ensure_testhost_image()
    directory = Path(args.dir)
    key, public_key = make_keypair(directory)
    names = [f"fleet-{args.label}-{i}" for i in range(1, args.count + 1)]
    remove_hosts(args.label)  # fresh servers every time
    started = time.monotonic()
    hosts = start_hosts(names, public_key, label=args.label, image=image, timeout=args.timeout)
    (directory / "hosts.json").write_text(
        json.dumps([{"name": h.name, "address": h.address, "container": h.container} for h in hosts],
                   indent=2) + "\n")
    print(f"{len(hosts)} practice host(s) up in {time.monotonic() - started:.1f} s "
          f"(label {args.label}, key {key}, list in {directory / 'hosts.json'}):")
    _print_hosts(hosts, key)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    _check_engine()
    remove_hosts(args.label)
    print(f"removed practice hosts and volumes labelled fleet-practice={args.label}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    _check_engine()
    _print_hosts(host_addresses(args.label))
    return 0


DEMO_INVENTORY = """\
# The practice fleet of `make demo`: real servers (containers running systemd and
# OpenSSH) on this machine. Written by `python -m practice inventory`.
name: {label}
ssh: {{user: teacher, key: {key}}}
hosts:
{hosts}docker: {{source: distro}}     # Docker's own repository is not reachable from the practice fleet
services:
  - name: notebook
    kind: jupyter
    image: {image}
    publish: 8000
    seats: 2
    memory: 512m
    cpus: 1
    env: {{TZ: Europe/Amsterdam}}
    push: true                 # the image is built on this computer; send it over SSH
# tls: auto, the default: HTTPS through one Caddy proxy per host; these private addresses get certificates
# from the proxy's own authority (a public one would get Let's Encrypt's)
proxy: {{image: fleet-caddy:test, push: true}}   # the official Caddy binary of caddy:2.11.7 (no registry here)
"""


HUB_INVENTORY = """\
# The practice fleet of `make demo-hub`: the whole class at one address, JupyterHub on Docker Swarm, on real
# servers (containers running systemd and OpenSSH) on this machine. Written by `python -m practice inventory --hub`.
name: {label}
mode: hub
ssh: {{user: teacher, key: {key}}}
hosts:
{hosts}docker: {{source: distro}}     # Docker's own repository is not reachable from the practice fleet
hub:
  port: 8443
  idle_timeout: 30m
  admin: teacher
  image: fleet-hub:test      # JupyterHub 6.1.1, dockerspawner 14, the idle culler (built here: no registry)
  push: true
roster: [Ada Lovelace, Grace Hopper, Alan Turing, Katherine Johnson]
services:
  - {{name: notebook, kind: jupyter, image: fleet-singleuser:test, memory: 512m, cpus: 0.5, push: true}}
proxy: {{image: fleet-caddy:test, push: true}}
"""


def cmd_inventory(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    hosts = json.loads((directory / "hosts.json").read_text())
    template = HUB_INVENTORY if args.hub else DEMO_INVENTORY
    print(template.format(label=args.label, key=(directory / "id_ed25519").resolve(), image=args.image,
                          hosts="".join(f"  - {h['address']}\n" for h in hosts)), end="")
    return 0


def cmd_hub_images(args: argparse.Namespace) -> int:
    _check_engine()
    from practice.images import ensure_hub_image, ensure_singleuser_image

    for tag in (*ensure_all_images(), ensure_singleuser_image(), ensure_hub_image()):
        print(tag)
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    _check_engine()
    for tag in ensure_all_images():
        print(tag)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m practice",
                                     description="Practice fleet: real test servers in local containers.")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start practice hosts (replacing any with the same label)")
    up.add_argument("--count", type=int, default=3)
    up.add_argument("--label", default="demo")
    up.add_argument("--dir", default=".demo", help="where the SSH key and hosts.json go")
    up.add_argument("--timeout", type=float, default=300, help="seconds for all hosts to boot")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="remove the practice hosts and volumes of a label")
    down.add_argument("--label", default="demo")
    down.set_defaults(func=cmd_down)

    ls = sub.add_parser("list", help="list running practice hosts of a label")
    ls.add_argument("--label", default="demo")
    ls.set_defaults(func=cmd_list)

    inv = sub.add_parser("inventory", help="print an inventory for the hosts of `up` (from DIR/hosts.json)")
    inv.add_argument("--label", default="demo")
    inv.add_argument("--dir", default=".demo")
    inv.add_argument("--image", default="fleet-jupyter:test")
    inv.add_argument("--hub", action="store_true", help="mode: hub (JupyterHub on Docker Swarm)")
    inv.set_defaults(func=cmd_inventory)

    hub_images = sub.add_parser("hub-images", help="the images, and the hub's and the students' servers' for mode: hub")
    hub_images.set_defaults(func=cmd_hub_images)

    images = sub.add_parser("images", help="build the base, test-host and Jupyter images")
    images.set_defaults(func=cmd_images)

    args = parser.parse_args(argv)
    if getattr(args, "count", 1) < 1:
        parser.error("--count must be at least 1")
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="practice: %(message)s")
    try:
        return args.func(args)
    except RuntimeError as exc:
        print(f"practice: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
