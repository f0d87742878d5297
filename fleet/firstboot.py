"""What a rented server runs at its first boot: Docker installed while it boots (cloud-init user_data).

A droplet created with this ``user_data`` installs and starts Docker during
cloud-init, before fleet even logs in, so the install overlaps the boot.
The steps are the very ones fleet would run over SSH (fleet/install.py, for
the distribution the image slug names and the inventory's ``docker.source``),
rendered here into one shell script; one implementation, two ways to run it.
The script records how it ended in :data:`STATUS` (``ok``, or the step that
failed), which the fact probe reads: when it failed, or the slug names no
distribution fleet knows, fleet installs Docker over SSH as it does for any
server, and says why.

Pure: text in, text out. Nothing here holds a secret.
"""
from __future__ import annotations

import base64
import re
import shlex

from fleet import distro, install
from fleet.steps import Run, Step, Upload

STATUS = "/var/lib/fleet/firstboot"  # "ok", or "failed: TITLE (exit N)"
SCRIPT_PATH = "/var/lib/fleet/firstboot.sh"

# image slug → os-release as that image ships it (what fleet's distribution detection reads)
CODENAMES = {
    ("debian", "11"): "bullseye", ("debian", "12"): "bookworm", ("debian", "13"): "trixie",
    ("ubuntu", "20.04"): "focal", ("ubuntu", "22.04"): "jammy", ("ubuntu", "24.04"): "noble",
    ("ubuntu", "24.10"): "oracular", ("ubuntu", "25.04"): "plucky", ("ubuntu", "25.10"): "questing",
}
SLUG_IDS = {"debian": "debian", "ubuntu": "ubuntu", "centos-stream": "centos", "rockylinux": "rocky",
            "almalinux": "almalinux", "fedora": "fedora"}
SLUG_RE = re.compile(r"^(debian|ubuntu|centos-stream|rockylinux|almalinux|fedora)-(\d+)(?:-(\d+))?-x64$")


def os_release_of(slug: str | int) -> dict[str, str] | None:
    """The os-release fields of a cloud image named by its slug; None for a custom image (a number) or one
    fleet does not know."""
    m = SLUG_RE.match(str(slug))
    if not m:
        return None
    kind, major, minor = m.groups()
    ident = SLUG_IDS[kind]
    version = f"{major}.{minor}" if minor else major
    fields = {"ID": ident, "VERSION_ID": version}
    if (ident, version) in CODENAMES:
        fields["VERSION_CODENAME"] = CODENAMES[(ident, version)]
    elif ident in ("debian", "ubuntu"):
        return None  # an apt release whose codename fleet does not know: Docker's repository needs it
    if ident in ("rocky", "almalinux", "centos"):
        fields["ID_LIKE"] = "rhel centos fedora"
    return fields


def steps_for(slug: str | int, source: str) -> list[Step] | None:
    """The install steps for the image, without the wait for cloud-init (the script runs inside it)."""
    fields = os_release_of(slug)
    if fields is None:
        return None
    found = distro.detect(fields)
    steps = install.docker_install_steps(found, source, arch="x86_64", systemd=True)
    return [s for s in steps if not (isinstance(s, Run) and s.title == "wait for cloud-init to finish")]


def script(steps: list[Step]) -> str:
    """The steps as one POSIX sh script that stops at the first failure and records how it ended."""
    lines = ["#!/bin/sh", "# Written by fleet: Docker at first boot (cloud-init user_data).", "set -u",
             f"mkdir -p {shlex.quote(STATUS.rsplit('/', 1)[0])}",
             f"status={shlex.quote(STATUS)}",
             "step() { title=$1; shift; \"$@\" || { rc=$?; echo \"failed: $title (exit $rc)\" > \"$status\"; exit \"$rc\"; }; }"]
    for s in steps:
        if isinstance(s, Upload):
            data = base64.b64encode(s.content).decode()
            write = f"umask 077 && mkdir -p \"$(dirname {shlex.quote(s.path)})\" && printf %s {data} | base64 -d > " \
                    f"{shlex.quote(s.path)} && chmod {s.mode:o} {shlex.quote(s.path)}"
            lines.append(f"step {shlex.quote(s.title)} sh -c {shlex.quote(write)}")
        elif isinstance(s, Run):
            lines.append(f"step {shlex.quote(s.title)} timeout {s.timeout} {shlex.join(s.argv)}")
        else:
            raise TypeError(f"{s!r} cannot run at first boot")
    lines.append('echo ok > "$status"')
    return "\n".join(lines) + "\n"


def user_data(slug: str | int, source: str) -> str | None:
    """The droplet's ``user_data``: a #cloud-config that writes the script and runs it; None when the image is
    not one fleet can plan for (the SSH path installs Docker then)."""
    steps = steps_for(slug, source)
    if steps is None:
        return None
    body = script(steps)
    indented = "".join(f"      {line}\n" for line in body.splitlines())
    return ("#cloud-config\n"
            "# Written by fleet: install and start Docker while the server boots.\n"
            "write_files:\n"
            f"  - path: {SCRIPT_PATH}\n"
            "    permissions: '0700'\n"
            "    content: |\n"
            f"{indented}"
            "runcmd:\n"
            f"  - [sh, {SCRIPT_PATH}]\n")
