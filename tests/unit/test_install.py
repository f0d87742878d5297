"""The Docker install plans, compared as plain data, and the wait scripts run for real."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet import install
from fleet.distro import Distro, detect, parse_os_release
from fleet.errors import InputError, UnsupportedOS
from fleet.install import (
    APT_LOCKS,
    REPAIR_DPKG,
    RPM_LOCKS,
    START_DOCKER_SYSV,
    WAIT_FOR_CLOUD_INIT,
    WAIT_FOR_DOCKER,
    WAIT_FOR_LOCKS,
    deb_arch,
    docker_install_steps,
    start_docker_steps,
)
from fleet.steps import Run, Upload

FIXTURES = Path(__file__).parent / "os-release"
SCRIPTS = {name: value for name, value in vars(install).items() if name.isupper() and isinstance(value, str)
           and value.startswith("\n")}
APT = ("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y", "-o", "DPkg::Lock::Timeout=300")


def distro(name: str) -> Distro:
    return detect(parse_os_release((FIXTURES / name).read_text()))


def shape(steps) -> list[tuple]:
    """Each step as the data that matters: argv, or what an upload writes."""
    out = []
    for s in steps:
        if isinstance(s, Upload):
            out.append(("upload", s.path, s.content.decode(), oct(s.mode)))
        else:
            out.append(s.argv)
    return out


def sh(script: str, *args: str) -> tuple[str, ...]:
    return ("sh", "-c", script, "sh", *args)


CLOUD_INIT = sh(WAIT_FOR_CLOUD_INIT, "600")
APT_LOCK_WAIT = sh(WAIT_FOR_LOCKS, "apt/dpkg lock", "300", *APT_LOCKS)
REPAIR = sh(REPAIR_DPKG, "300")  # finishes a cut-off dpkg run before apt is used
RPM_LOCK_WAIT = sh(WAIT_FOR_LOCKS, "yum/dnf/rpm lock", "300", *RPM_LOCKS)
START = [("systemctl", "enable", "--now", "docker"), sh(WAIT_FOR_DOCKER, "60")]


def test_ubuntu_22_04_official_on_x86_64_is_dockers_apt_page():
    steps = docker_install_steps(distro("ubuntu-22.04"), "official", arch="x86_64", systemd=True)
    assert shape(steps) == [
        CLOUD_INIT,
        APT_LOCK_WAIT,
        REPAIR,
        (*APT, "update"),
        (*APT, "install", "ca-certificates", "curl"),
        ("install", "-m", "0755", "-d", "/etc/apt/keyrings"),
        ("curl", "-fsSL", "https://download.docker.com/linux/ubuntu/gpg", "-o", "/etc/apt/keyrings/docker.asc"),
        ("chmod", "a+r", "/etc/apt/keyrings/docker.asc"),
        ("upload", "/etc/apt/sources.list.d/docker.list",
         "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/ubuntu jammy stable\n",
         "0o644"),
        (*APT, "update"),
        (*APT, "install", "docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin",
         "docker-compose-plugin"),
        *START,
    ]


def test_debian_12_official_uses_the_debian_repo_and_codename():
    upload = [s for s in docker_install_steps(distro("debian-12"), "official", arch="aarch64", systemd=True)
              if isinstance(s, Upload)]
    assert [u.content for u in upload] == [
        b"deb [arch=arm64 signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/debian bookworm stable\n"
    ]


def test_linux_mint_official_takes_the_ubuntu_repo_with_the_ubuntu_codename():
    steps = docker_install_steps(distro("linuxmint-21.2"), "official", arch="x86_64", systemd=True)
    (upload,) = [s for s in steps if isinstance(s, Upload)]
    assert b"/linux/ubuntu jammy stable" in upload.content


def test_raspbian_is_armhf_even_on_a_64_bit_kernel():
    pi = Distro("raspbian", "12", "bookworm", "debian", "Raspbian GNU/Linux 12 (bookworm)", "raspbian")
    (upload,) = [s for s in docker_install_steps(pi, "official", arch="aarch64", systemd=True)
                 if isinstance(s, Upload)]
    assert upload.content.startswith(b"deb [arch=armhf ") and b"/linux/raspbian bookworm" in upload.content


def test_debian_12_distro_installs_docker_io():
    steps = docker_install_steps(distro("debian-12"), "distro", arch="x86_64", systemd=True)
    assert shape(steps) == [
        CLOUD_INIT, APT_LOCK_WAIT, REPAIR, (*APT, "update"), (*APT, "install", "docker.io"), *START,
    ]


def test_fedora_distro_installs_moby_engine():
    steps = docker_install_steps(distro("fedora-42"), "distro", arch="x86_64", systemd=True)
    assert shape(steps) == [CLOUD_INIT, RPM_LOCK_WAIT, ("dnf", "-y", "install", "moby-engine"), *START]


def test_centos_7_distro_is_yum_install_docker():
    steps = docker_install_steps(distro("centos-7"), "distro", arch="x86_64", systemd=True)
    assert shape(steps) == [CLOUD_INIT, RPM_LOCK_WAIT, ("yum", "-y", "install", "docker"), *START]


@pytest.mark.parametrize("name, tool, repo", [
    ("rocky-9", "dnf", "centos"),
    ("almalinux-9.1", "dnf", "centos"),
    ("oracle-9.3", "dnf", "centos"),
    ("centos-stream-9", "dnf", "centos"),
    ("centos-7", "yum", "centos"),
    ("rhel-9", "dnf", "rhel"),
    ("fedora-39", "dnf", "fedora"),
    ("fedora-42", "dnf", "fedora"),
])
def test_rpm_official_fetches_dockers_repo_file_then_installs_docker_ce(name, tool, repo):
    steps = docker_install_steps(distro(name), "official", arch="x86_64", systemd=True)
    assert shape(steps) == [
        CLOUD_INIT,
        RPM_LOCK_WAIT,
        sh(install.ENSURE_CURL, tool),
        ("curl", "-fsSL", "-o", "/etc/yum.repos.d/docker-ce.repo",
         f"https://download.docker.com/linux/{repo}/docker-ce.repo"),
        (tool, "-y", "install", "docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin",
         "docker-compose-plugin"),
        *START,
    ]


@pytest.mark.parametrize("name", ["rhel-9", "rocky-9", "almalinux-9.1", "oracle-9.3", "centos-stream-9"])
def test_el8_and_newer_have_no_distro_docker(name):
    with pytest.raises(UnsupportedOS) as err:
        docker_install_steps(distro(name), "distro", arch="x86_64", systemd=True)
    assert "docker: {source: official}" in str(err.value)
    assert distro(name).pretty in str(err.value)


@pytest.mark.parametrize("name, tool", [("amazon-2023", "dnf"), ("amazon-2", "yum")])
def test_amazon_official_falls_back_to_its_docker_package_and_says_so(name, tool):
    steps = docker_install_steps(distro(name), "official", arch="x86_64", systemd=True)
    assert shape(steps) == [CLOUD_INIT, RPM_LOCK_WAIT, (tool, "-y", "install", "docker"), *START]
    assert "no repository for Amazon Linux" in steps[2].title
    plain = docker_install_steps(distro(name), "distro", arch="x86_64", systemd=True)
    assert shape(plain) == shape(steps) and "no repository" not in plain[2].title


def test_without_systemd_docker_is_started_with_service_and_enabled_at_boot():
    steps = docker_install_steps(distro("debian-12"), "distro", arch="x86_64", systemd=False)
    assert shape(steps[-2:]) == [sh(START_DOCKER_SYSV), sh(WAIT_FOR_DOCKER, "60")]
    assert "service docker start" in START_DOCKER_SYSV
    assert "update-rc.d docker defaults" in START_DOCKER_SYSV and "chkconfig docker on" in START_DOCKER_SYSV


def test_start_steps_are_the_tail_of_every_install():
    for systemd in (True, False):
        steps = docker_install_steps(distro("rocky-9"), "official", arch="x86_64", systemd=systemd)
        assert steps[-2:] == start_docker_steps(systemd, repair=False)
        assert start_docker_steps(systemd)[0].argv == REPAIR  # Docker installed but stopped: finish dpkg first


ALL_PLANS = [(n, src) for n in ("ubuntu-20.04", "ubuntu-24.04", "debian-11", "linuxmint-21.2", "pop-22.04",
                                "centos-7", "rocky-9", "fedora-42", "amazon-2", "amazon-2023", "rhel-9")
             for src in ("official", "distro") if not (n in ("rhel-9", "rocky-9") and src == "distro")]


@pytest.mark.parametrize("name, source", ALL_PLANS)
def test_every_step_has_a_timeout_beyond_its_inner_wait(name, source):
    steps = docker_install_steps(distro(name), source, arch="x86_64", systemd=True)
    for s in steps:
        assert isinstance(s.timeout, int) and s.timeout > 0, s
        if isinstance(s, Run) and s.argv[:2] == ("sh", "-c") and s.argv[2] in (WAIT_FOR_LOCKS, WAIT_FOR_CLOUD_INIT,
                                                                                 WAIT_FOR_DOCKER):
            bound = int(s.argv[5] if s.argv[2] == WAIT_FOR_LOCKS else s.argv[4])
            assert s.timeout > bound, s.title
        if isinstance(s, Run) and "apt-get" in s.argv:
            assert s.timeout > 300 + 60, s.title  # the apt lock timeout plus real work
        if isinstance(s, Run) and "install" in s.argv[1:] and "-y" in s.argv:
            assert s.timeout >= 900, s.title


@pytest.mark.parametrize("name, source", ALL_PLANS)
def test_no_host_value_is_ever_inside_a_script(name, source):
    d = distro(name)
    steps = docker_install_steps(d, source, arch="x86_64", systemd=True)
    for s in steps:
        if isinstance(s, Run) and s.argv[0] == "sh":
            assert s.argv[:2] == ("sh", "-c") and s.argv[3] == "sh"
            assert s.argv[2] in SCRIPTS.values(), f"{s.title}: script is not a module constant"
        if isinstance(s, Run) and d.codename:
            assert not any(d.codename in a for a in s.argv), f"{s.title}: codename outside the uploaded file"
    for script in SCRIPTS.values():
        assert d.pretty not in script and "amd64" not in script


def test_apt_commands_never_ask():
    steps = docker_install_steps(distro("ubuntu-24.04"), "official", arch="x86_64", systemd=True)
    apt = [s.argv for s in steps if isinstance(s, Run) and "apt-get" in s.argv]
    assert len(apt) == 4
    for argv in apt:
        assert argv[:5] == ("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y")
        assert "DPkg::Lock::Timeout=300" in argv


@dataclass
class Bounds:
    install: int = 1200
    lock: int = 45
    cloud_init: int = 90


def test_timeouts_come_from_the_inventory():
    steps = docker_install_steps(distro("ubuntu-24.04"), "distro", arch="x86_64", systemd=True, timeouts=Bounds())
    assert steps[0].argv[4] == "90" and steps[0].timeout == 150
    assert steps[1].argv[5] == "45" and steps[1].timeout == 105
    assert steps[2].argv[4] == "45" and steps[2].timeout == 45 + 1200  # finishing a cut-off dpkg run
    assert "DPkg::Lock::Timeout=45" in steps[4].argv and steps[4].timeout == 45 + 1200


def test_zero_means_do_not_wait():
    steps = docker_install_steps(distro("ubuntu-24.04"), "distro", arch="x86_64", systemd=True,
                                 timeouts=Bounds(lock=0, cloud_init=0))
    assert [s.argv[2] for s in steps if s.argv[0] == "sh"] == [REPAIR_DPKG, WAIT_FOR_DOCKER]  # a repair, not a wait
    assert "DPkg::Lock::Timeout=0" in steps[1].argv


def test_unknown_source_is_an_input_error():
    with pytest.raises(InputError, match="docker.source"):
        docker_install_steps(distro("debian-12"), "snap", arch="x86_64", systemd=True)


def test_deb_arch():
    assert [deb_arch(m) for m in ("x86_64", "aarch64", "armv7l")] == ["amd64", "arm64", "armhf"]
    with pytest.raises(UnsupportedOS, match="'riscv64'.*supported: x86_64, aarch64, armv7l"):
        deb_arch("riscv64")
    with pytest.raises(UnsupportedOS):
        docker_install_steps(distro("ubuntu-24.04"), "official", arch="s390x", systemd=True)


def test_missing_codename_is_refused_for_dockers_apt_repo():
    sid = Distro("debian", "", "", "debian", "Debian GNU/Linux trixie/sid", "debian")
    with pytest.raises(UnsupportedOS, match="codename"):
        docker_install_steps(sid, "official", arch="x86_64", systemd=True)
    weird = Distro("debian", "12", "book worm; rm -rf /", "debian", "Debian", "debian")
    with pytest.raises(UnsupportedOS):
        docker_install_steps(weird, "official", arch="x86_64", systemd=True)


def test_describe_works_for_every_step():
    for s in docker_install_steps(distro("ubuntu-22.04"), "official", arch="x86_64", systemd=True):
        assert s.describe()["do"] == s.title


# ---- the scripts themselves, run with /bin/sh on this machine -------------------------------------------


def run(script: str, *args: str, path: str | None = None, timeout: int = 30) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": path or os.environ["PATH"], "LC_ALL": "C"}
    return subprocess.run(["/bin/sh", "-c", script, "sh", *args], capture_output=True, text=True, env=env,
                           timeout=timeout)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_scripts_are_valid_posix_sh(name):
    result = subprocess.run(["/bin/sh", "-n", "-c", SCRIPTS[name]], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def lock(tmp_path) -> str:
    path = tmp_path / "lock-frontend"
    path.write_text("")
    return os.path.realpath(path)  # /proc/*/fd links name the real path


@pytest.fixture
def holder(lock):
    with open(lock) as f:
        proc = subprocess.Popen(["sleep", "60"], stdin=f)
    yield proc
    proc.kill()
    proc.wait()


def test_lock_wait_passes_when_nobody_holds_the_lock(lock, tmp_path):
    result = run(WAIT_FOR_LOCKS, "test lock", "5", lock, str(tmp_path / "absent"))
    assert (result.returncode, result.stderr) == (0, "")


def test_lock_wait_gives_up_with_a_message_when_the_lock_stays_held(lock, holder):
    result = run(WAIT_FOR_LOCKS, "test lock", "1", "/nonexistent/lock", lock)
    assert result.returncode == 1
    assert f"waiting up to 1s for the test lock, held by PID {holder.pid} (sleep)" in result.stderr
    assert f"gave up after 1s: the test lock is still held by PID {holder.pid} (sleep)" in result.stderr


def test_lock_wait_returns_as_soon_as_the_holder_exits(lock, tmp_path):
    with open(lock) as f:
        proc = subprocess.Popen(["sleep", "6"], stdin=f)
    try:
        result = run(WAIT_FOR_LOCKS, "test lock", "20", lock)
    finally:
        proc.wait()
    assert result.returncode == 0
    assert f"held by PID {proc.pid} (sleep)" in result.stderr


def test_lock_wait_reads_pid_files(tmp_path, holder):
    pid_file = tmp_path / "yum.pid"
    pid_file.write_text(f"{holder.pid}\n")
    held = run(WAIT_FOR_LOCKS, "yum lock", "0", str(pid_file))
    assert held.returncode == 1 and f"PID {holder.pid} (sleep)" in held.stderr
    for stale in ("", "not a pid", "4194311"):  # above Linux's largest pid_max (2**22)
        pid_file.write_text(stale)
        assert run(WAIT_FOR_LOCKS, "yum lock", "0", str(pid_file)).returncode == 0, stale


def fake(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / name
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(0o755)


def test_docker_wait_passes_when_docker_answers(tmp_path):
    fake(tmp_path / "bin", "docker", "exit 0")
    result = run(WAIT_FOR_DOCKER, "5", path=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    assert (result.returncode, result.stderr) == (0, "")


def test_docker_wait_times_out_with_the_daemons_complaint(tmp_path):
    fake(tmp_path / "bin", "docker", "echo 'Cannot connect to the Docker daemon' >&2; exit 1")
    result = run(WAIT_FOR_DOCKER, "1", path=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    assert result.returncode == 1
    assert "waiting up to 1s for the docker daemon to answer" in result.stderr
    assert "docker did not answer 'docker info' within 1s: Cannot connect to the Docker daemon" in result.stderr


@pytest.mark.parametrize("status, rc, says", [
    ("exit 0", 0, ""),
    ("exit 2", 0, ""),  # recoverable error: cloud-init is done
    ("exit 1", 0, "finished with an error"),
    ("exec sleep 30", 1, "still running after 1s"),
])
def test_cloud_init_wait(tmp_path, status, rc, says):
    fake(tmp_path / "bin", "cloud-init", f'[ "$2" = --wait ] && {status}\necho "status: running"')
    result = run(WAIT_FOR_CLOUD_INIT, "1", path=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    assert result.returncode == rc, result.stderr
    assert "waiting up to 1s for cloud-init" in result.stderr
    assert says in result.stderr


def test_cloud_init_wait_without_cloud_init(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run(WAIT_FOR_CLOUD_INIT, "1", path=str(tmp_path / "empty"))
    assert (result.returncode, result.stderr) == (0, "")
