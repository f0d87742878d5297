"""Real test hosts: containers running systemd and OpenSSH, reached over real SSH.

Everything a test run starts carries the label fleet-practice=<run label> and
is removed at the end. Tests only talk to addresses read from `docker inspect`
of their own containers, and to loopback.
"""
from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from practice import hosts as practice_hosts
from practice import images

ROOT = Path(__file__).resolve().parents[2]
FAB = [sys.executable, "-m", "fabric"]


@pytest.fixture(scope="session")
def run_label() -> str:
    return f"pytest-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def built_images() -> dict[str, str]:
    images.ensure_base_image()
    return {"testhost": images.ensure_testhost_image(), "jupyter": images.ensure_jupyter_image(),
            "caddy": images.ensure_caddy_image()}


@pytest.fixture(scope="session")
def keypair(tmp_path_factory) -> tuple[Path, str]:
    return practice_hosts.make_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def start_hosts(built_images, keypair, run_label):
    """Start real test hosts on demand; all of them are removed when the session ends."""
    def start(*names: str) -> list[practice_hosts.TestHost]:
        return practice_hosts.start_hosts([f"{run_label}-{n}" for n in names], keypair[1], label=run_label,
                                          image=built_images["testhost"])
    yield start
    practice_hosts.remove_hosts(run_label)


def fab(*args: str, cwd: Path, state_dir: Path, timeout: int = 900, stdin: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the real `fab` command line, as a teacher would."""
    env = {**os.environ, "FLEET_STATE_DIR": str(state_dir), "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([*FAB, "--search-root", str(ROOT), *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout, input=stdin or "")


def ssh(host: practice_hosts.TestHost, key: Path, command: str, *, user: str = "root", timeout: int = 60) -> str:
    """An independent look at a host with the OpenSSH client, to check what fleet did."""
    out = subprocess.run(
        ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", f"{user}@{host.address}", command],
        capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout


def seat_http(url: str, token: str | None, context: ssl.SSLContext | None = None, deadline: float = 90) -> int:
    """The HTTP status of a Jupyter seat's /api/status (with ``token`` if given), waiting while the server starts."""
    end = time.monotonic() + deadline
    while True:
        req = urllib.request.Request(url + "api/status", headers={"Authorization": f"token {token}"} if token else {})
        try:
            with urllib.request.urlopen(req, timeout=5, context=context) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(1)
