"""The classroom at 8:45 on hotel Wi-Fi: faults injected into real test hosts, driven through the real `fab`.

Four real test hosts (systemd + OpenSSH + their own Docker, reached over real
SSH), plus loopback:

- A: the good server. Its sshd also listens on 2201-2203 so that it can be
  listed again as other "servers": a user without sudo (student), a user whose
  sudo wants a password (pwuser), and a wrong key.
- B: a fresh server, stopped (`docker stop`) while dpkg configures Docker,
  then started again; later its network is cut in the middle of an image
  transfer, and runs on it are interrupted with SIGINT and SIGTERM.
- C: a fresh server whose dpkg lock another process holds (the way
  unattended-upgrades does on a new cloud server); later its disk is full and
  one of its seat ports is taken.
- D: a server that is down from the start (its network link is down, so its
  address stays reserved for this run and nobody else answers on it).
- 127.0.0.1:<port>: a listener that accepts TCP connections and never says a
  word (an SSH port that never completes the handshake).

Each fault asserts what a teacher sees: one line for the failing host, every
other host converged, exit status 1, and a bounded time; then that a plain
re-run converges. Set-up done "as an admin on the console" (stopping a host,
holding a lock, filling a disk) uses `docker exec`; fleet itself only ever talks
SSH. The seats run tiny images built here from debian:bookworm: one that
idles, one that exits at once, and a 64 MB one that takes a few seconds to send.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from practice import hosts as practice_hosts
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.hosts

FAB = [sys.executable, "-m", "fabric"]
IDLE, CRASH, LATE, BIG = ("fleet-faults-idle:test", "fleet-faults-crash:test", "fleet-faults-late:test",
                          "fleet-faults-big:test")
SERVE = '["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]'  # a seat that answers HTTP, as web apps do
PASSWORD = "pa$(touch /tmp/fleet-pwned-pw) 'q\"; `id` x"  # pwuser's sudo password: hostile on purpose

# Images without a registry: the programs they need, copied with their libraries out of debian:bookworm;
# a static busybox serves HTTP, so that a seat answers fleet's readiness check as a web app would.
DOCKERFILE = """\
FROM debian:bookworm AS base
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends busybox-static \\
 && mkdir -p /out/tmp /out/www && chmod 1777 /out/tmp && cp /bin/busybox /out/bin-busybox && echo ok > /out/www/index.html \\
 && for f in /bin/dash /bin/sleep /usr/bin/env; do cp --parents "$f" /out/; \\
      for lib in $(ldd "$f" | grep -o '/[^ ]*'); do cp --parents -L "$lib" /out/; done; done \\
 && mv /out/bin-busybox /out/bin/busybox && ln -s dash /out/bin/sh {extra}
FROM scratch
COPY --from=base /out/ /
CMD {cmd}
"""
IMAGES = {
    IDLE: ("", SERVE),
    CRASH: ("", '["/bin/sh", "-c", "echo \\"fatal: /etc/app.conf is missing\\" >&2; exit 3"]'),
    LATE: ("", '["/bin/sh", "-c", "sleep 8; echo \\"fatal: licence server unreachable\\" >&2; exit 4"]'),
    BIG: ("&& head -c 64M /dev/urandom > /out/blob", SERVE),
}

INVENTORY = """\
name: {name}
ssh: {{key: {key}, user: teacher}}
hosts:
{hosts}
docker: {{source: distro}}
tls: off
parallel: 10
timeouts: {{connect: 5{timeouts}}}
services:
{services}"""
SERVICE = ("  - {{name: {svc}, kind: generic, image: \"{image}\", port: 8080, secret_env: TOKEN, publish: {publish}, "
           "seats: {seats}, push: {push}{extra}}}\n")


def build_images() -> None:
    for tag, (extra, cmd) in IMAGES.items():
        subprocess.run(["docker", "build", "-q", "-t", tag, "-"], input=DOCKERFILE.format(extra=extra, cmd=cmd),
                       text=True, check=True, capture_output=True, timeout=300)


def admin(host, script: str, *, check: bool = True, timeout: int = 120, env: dict | None = None) -> str:
    """What an admin would do on the server's console (fleet itself only uses SSH)."""
    flags = [x for k, v in (env or {}).items() for x in ("-e", f"{k}={v}")]
    out = subprocess.run(["docker", "exec", *flags, host.container, "sh", "-c", script], capture_output=True,
                         text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, f"{script}: {out.stderr}"
    return out.stdout


CUT = 'set -- $(ip -o route show default); echo "$5 $3" > /run/fleet-cut; ip link set "$5" down'
UNCUT = 'read dev gw < /run/fleet-cut && ip link set "$dev" up && ip route replace default via "$gw" dev "$dev"'
# A slow link, made certain: the host's docker load stops reading, so the transfer stalls mid-way
# (SSH flow control) instead of finishing before the test's signal on a fast machine.
STALL = ('for i in $(seq 200); do pkill -STOP -f "^docker load$" && exit 0; sleep 0.05; done; '
         'echo "docker load never started or already finished" >&2; exit 1')
UNSTALL = 'pkill -CONT -f "^docker load$"; true'
HOLD = ("import fcntl, sys, time; f = open('/var/lib/dpkg/lock-frontend', 'w'); fcntl.lockf(f, fcntl.LOCK_EX); "
        "time.sleep(float(sys.argv[1]))")


def hold_dpkg_lock(host, seconds: float) -> int:
    """Another process holds dpkg's lock for ``seconds`` (as unattended-upgrades does); returns its PID."""
    subprocess.run(["docker", "exec", "-d", host.container, "python3", "-c", HOLD, str(seconds), "fleet-lock-holder"],
                   check=True, timeout=30)
    end = time.monotonic() + 20
    while time.monotonic() < end:
        pid = admin(host, "pgrep -f 'fleet-lock-holde[r]' || true").split()
        if pid and "lock-frontend" in admin(host, f"ls -l /proc/{pid[0]}/fd || true"):
            return int(pid[0])
        time.sleep(0.2)
    raise AssertionError("the lock holder did not start")


def restart(host) -> practice_hosts.TestHost:
    """Start a stopped test host again and wait for SSH; its address may have changed."""
    subprocess.run(["docker", "start", host.container], check=True, timeout=60, capture_output=True)
    deadline = time.monotonic() + 150
    practice_hosts._wait_booted(host.container, deadline)
    address = practice_hosts._address(host.container)
    practice_hosts._wait_ssh(host.container, address, deadline)
    return practice_hosts.TestHost(host.name, address, host.container)


class Fab:
    """A running `fab` command, as a teacher runs it; every output line with the second it arrived."""

    def __init__(self, lab: Lab, *args: str, env: dict | None = None):
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("FABRIC_")},
               "FLEET_STATE_DIR": str(lab.state), "PYTHONPATH": str(ROOT), **(env or {})}
        self.args = args
        self.started = time.monotonic()
        self.proc = subprocess.Popen([*FAB, "--search-root", str(ROOT), *args], cwd=lab.work, env=env, text=True,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)  # its own process group, like a terminal's job
        self.out: list[tuple[float, str]] = []
        self.err: list[tuple[float, str]] = []
        self.readers = [threading.Thread(target=self._read, args=(s, into), daemon=True)
                        for s, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for r in self.readers:
            r.start()
        self.rc: int | None = None
        self.seconds = 0.0

    def _read(self, stream, into: list) -> None:  # noqa: ANN001
        for line in stream:
            into.append((time.monotonic() - self.started, line.rstrip("\n")))

    def when(self, pattern: str, timeout: float = 300) -> float:
        """Wait until a line matching ``pattern`` appears; the second it appeared."""
        regex, end = re.compile(pattern), time.monotonic() + timeout
        while True:
            for t, line in list(self.err) + list(self.out):
                if regex.search(line):
                    return t
            if self.proc.poll() is not None and not any(r.is_alive() for r in self.readers):
                raise AssertionError(f"{pattern!r} never appeared in fab {' '.join(self.args)}:\n{self.text}")
            if time.monotonic() > end:
                raise AssertionError(f"{pattern!r} did not appear within {timeout} s:\n{self.text}")
            time.sleep(0.1)

    def signal(self, sig: int, *, group: bool = False) -> float:
        """Send a signal (to the whole process group for a terminal's Ctrl-C); the second it was sent."""
        if group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        return time.monotonic() - self.started

    def wait(self, timeout: float = 600) -> Fab:
        self.proc.wait(timeout=timeout)
        for r in self.readers:
            r.join(timeout=10)
        self.rc, self.seconds = self.proc.returncode, time.monotonic() - self.started
        print(f"$ fab {' '.join(self.args)}  -> exit {self.rc} in {self.seconds:.1f} s\n{self.text}")
        assert "Traceback" not in self.text
        return self

    @property
    def stdout(self) -> str:
        return "\n".join(line for _, line in self.out)

    @property
    def stderr(self) -> str:
        return "\n".join(line for _, line in self.err)

    @property
    def text(self) -> str:
        return "\n".join(f"{t:6.1f} {line}" for t, line in sorted(self.out + self.err))

    def rows(self, host_id: str) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith(host_id + " ")]

    def failed(self, host_id: str, *words: str) -> str:
        """The host's one table line, which must say FAILED and each of ``words``; returns it."""
        rows = self.rows(host_id)
        assert len(rows) == 1 and " FAILED: " in rows[0], (host_id, self.stdout)
        for w in words:
            assert w in rows[0], (w, rows[0])
        progress = [line for _, line in self.err if re.match(rf"\[\d+/\d+\] {re.escape(host_id)}: ", line)]
        assert len(progress) == 1, progress
        return rows[0]

    def finished_at(self, host_id: str) -> float:
        """The second the host's result line was printed."""
        return self.when(rf"^\[\d+/\d+\] {re.escape(host_id)}: ", timeout=0)

    def running(self, host_id: str, seats: int) -> None:
        rows = self.rows(host_id)
        assert len(rows) == seats and all(r.split()[-1] == "running" for r in rows), (host_id, self.stdout)


@dataclass
class Lab:
    hosts: dict
    key: Path
    wrong_key: Path
    work: Path
    state: Path
    silent_port: int
    notes: dict = field(default_factory=dict)

    def inventory(self, name: str, hosts: list[str], *, image: str = IDLE, publish: int = 9100, seats: int = 1,
                  timeouts: str = "", push: bool = True, services: str | None = None, file: str | None = None) -> Path:
        body = INVENTORY.format(
            name=name, key=self.key, hosts="".join(f"  - {h}\n" for h in hosts), timeouts=timeouts,
            services=services or SERVICE.format(svc="app", image=image, publish=publish, seats=seats,
                                                push="true" if push else "false", extra=""))
        path = self.work / (file or f"{name}.yml")
        path.write_text(body)
        return path

    def run(self, *args: str, env: dict | None = None, timeout: float = 600) -> Fab:
        return Fab(self, *args, env=env).wait(timeout)

    def state_of(self, fleet: str) -> dict:
        return json.loads((self.state / f"{fleet}.json").read_text())


@pytest.fixture(scope="module")
def lab(start_hosts, keypair, tmp_path_factory):
    a, b, c, d = start_hosts("fa", "fb", "fc", "fd")
    work = tmp_path_factory.mktemp("faults")
    build_images()
    admin(a, "printf 'Port 22\\nPort 2201\\nPort 2202\\nPort 2203\\n' > /etc/ssh/sshd_config.d/fleet-faults.conf "
             "&& systemctl restart ssh "
             "&& useradd -m -s /bin/bash pwuser && echo \"pwuser:$PW\" | chpasswd "
             "&& echo 'pwuser ALL=(ALL) ALL' > /etc/sudoers.d/pwuser "
             "&& cp -r /home/teacher/.ssh /home/pwuser/ && chown -R pwuser: /home/pwuser/.ssh", env={"PW": PASSWORD})
    for port in (2201, 2202, 2203):
        end = time.monotonic() + 30
        while subprocess.run(["ssh-keyscan", "-p", str(port), a.address], capture_output=True, timeout=10).returncode:
            assert time.monotonic() < end, f"sshd does not answer on {port}"
            time.sleep(0.3)
    admin(d, CUT)  # D is down from the start: no answer at all, and its address stays ours
    wrong_key, _ = practice_hosts.make_keypair(work / "wrong-key")

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel completes every TCP handshake; nothing ever speaks SSH
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.5)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    yield Lab({"a": a, "b": b, "c": c, "d": d}, keypair[0], wrong_key, work, work / "state",
              silent.getsockname()[1])
    stop.set()
    for s in held:
        s.close()
    silent.close()
    subprocess.run(["docker", "rmi", "-f", *IMAGES], capture_output=True, timeout=120)  # the images this module built


# --- one classroom run with everything wrong at once ---------------------------------

@pytest.fixture(scope="module")
def classroom(lab):
    """`fab provision` over eight "servers": two fresh ones that work out, six that cannot.

    B is stopped while dpkg configures Docker; C's dpkg lock is held for a
    minute; D is down; the silent port never speaks SSH; A is listed again with
    a wrong key, a user without sudo and a user whose sudo wants a password.
    While the run waits for C's lock, a second provision, a teardown and a
    status of the same fleet are tried.
    """
    a, b, c, d = (lab.hosts[k] for k in "abcd")
    out: dict = {}
    # Another process takes C's dpkg lock for a minute. First, with `timeouts: {lock: 5}`, a lock held past
    # the bound fails the host clearly; then the classroom run (default bound 300 s) waits for it.
    out["holder"] = hold_dpkg_lock(c, 60)
    out["held_at"] = time.monotonic()
    out["lock5"] = lab.run("provision", "--hosts", str(lab.inventory("faults", [c.address], timeouts=", lock: 5",
                                                                      file="lock5.yml")))

    hosts = [a.address, f"{{address: {a.address}, port: 2201, user: student}}",
             f"{{address: {a.address}, port: 2202, user: pwuser}}",
             f"{{address: {a.address}, port: 2203, key: {lab.wrong_key}}}",
             d.address, f"127.0.0.1:{lab.silent_port}", b.address, c.address]
    inv = lab.inventory("faults", hosts)
    run = Fab(lab, "provision", "--hosts", str(inv))
    out["run_started"] = run.started

    stopped: dict = {}

    def stop_b_mid_install() -> None:
        """Stop B once dpkg has unpacked Docker and before it is configured."""
        probe = "test -e /var/lib/dpkg/info/docker.io.list && dpkg-query -W -f='${Status}' docker.io"
        end = time.monotonic() + 300
        while time.monotonic() < end:
            seen = subprocess.run(["docker", "exec", b.container, "sh", "-c", probe], capture_output=True, text=True,
                                  timeout=30)
            if seen.returncode == 0 and seen.stdout.strip() != "install ok installed":
                subprocess.run(["docker", "stop", "-t", "3", b.container], check=True, timeout=60, capture_output=True)
                stopped.update(at=time.monotonic() - run.started, dpkg=seen.stdout.strip())
                return
            time.sleep(0.2)

    stopper = threading.Thread(target=stop_b_mid_install, daemon=True)
    stopper.start()
    run.when(rf"{re.escape(c.address)}: waiting up to 300s for the apt/dpkg lock", timeout=120)
    before = (lab.state / "faults.json").read_bytes()
    out["second"] = lab.run("provision", "--hosts", str(inv), timeout=60)
    out["teardown"] = lab.run("teardown", "--hosts", str(inv), "--yes", timeout=60)
    out["status"] = lab.run("status", "--hosts", str(inv), timeout=120)
    out["state_untouched"] = (lab.state / "faults.json").read_bytes() == before
    out["run"] = run.wait(600)
    stopper.join(timeout=60)
    out["stopped"] = stopped
    out["b_address"] = b.address

    # B comes back (maybe at another address); a plain re-run of the working servers converges.
    lab.hosts["b"] = b2 = restart(b)
    out["dpkg_audit"] = admin(b2, "dpkg --audit || true")
    good = lab.inventory("faults", [a.address, b2.address, c.address], file="faults-good.yml")
    out["rerun"] = lab.run("provision", "--hosts", str(good))
    lab.notes["good"] = good
    return out


def test_lock_held_past_the_bound_fails_that_host_clearly(lab, classroom):
    run, c = classroom["lock5"], lab.hosts["c"]
    assert run.rc == 1
    run.failed(c.address, "wait for the apt/dpkg lock failed: gave up after 5s: the apt/dpkg lock is still held by "
                          f"PID {classroom['holder']} (python3)")
    assert f"{c.address}: waiting up to 5s for the apt/dpkg lock, held by PID {classroom['holder']} (python3)" \
        in run.stderr
    assert run.seconds < 60


def test_host_down_from_the_start(lab, classroom):
    run, d = classroom["run"], lab.hosts["d"]
    line = run.failed(d.address)
    assert f"cannot connect to {d.address} port 22: No route to host" in line or \
        f"no answer from {d.address} port 22 within 5 s" in line, line
    assert run.finished_at(d.address) < 30


def test_ssh_port_that_never_completes_the_handshake(lab, classroom):
    run = classroom["run"]
    host = f"127.0.0.1:{lab.silent_port}"
    run.failed(host, f"127.0.0.1 port {lab.silent_port} accepts connections but SSH did not finish its handshake "
                     "and login within 5 s")
    assert run.finished_at(host) < 30


def test_wrong_key(lab, classroom):
    run, a = classroom["run"], lab.hosts["a"]
    run.failed(f"{a.address}:2203", "SSH login as 'teacher' was refused (no key accepted)")
    assert run.finished_at(f"{a.address}:2203") < 30


def test_user_without_sudo(lab, classroom):
    run, a = classroom["run"], lab.hosts["a"]
    run.failed(f"{a.address}:2201", "user 'student' needs a sudo password: run with --prompt-for-sudo-password")
    assert run.finished_at(f"{a.address}:2201") < 30


def test_sudo_that_wants_a_password_nobody_gave(lab, classroom):
    run, a = classroom["run"], lab.hosts["a"]
    run.failed(f"{a.address}:2202", "user 'pwuser' needs a sudo password: run with --prompt-for-sudo-password")
    assert run.finished_at(f"{a.address}:2202") < 30


def test_host_stopped_in_the_middle_of_installing_docker(lab, classroom):
    run, stopped = classroom["run"], classroom["stopped"]
    b_id = classroom["b_address"]  # as the run knew it (after its restart B may have another one)
    assert stopped, "B was never caught between unpacking and configuring Docker"
    line = run.failed(b_id)
    assert re.search(rf"(lost contact with {re.escape(b_id)}: no answer for \d+ s|the SSH connection to "
                     rf"{re.escape(b_id)} broke) during: install Docker from the distribution \(docker\.io\)", line), line
    assert run.finished_at(b_id) - stopped["at"] < 45, (run.finished_at(b_id), stopped)


def test_dpkg_lock_held_for_a_minute_is_waited_for_and_said(lab, classroom):
    run, c = classroom["run"], lab.hosts["c"]
    said = f"{c.address}: waiting up to 300s for the apt/dpkg lock, held by PID {classroom['holder']} (python3)"
    assert said in run.stderr
    run.running(c.address, 1)
    lock_freed = classroom["held_at"] + 60 - classroom["run_started"]
    assert lock_freed > 40  # the run started while the lock had most of its minute to go
    assert run.finished_at(c.address) > lock_freed


def test_every_other_host_converges_and_the_run_is_bounded(lab, classroom):
    run, a = classroom["run"], lab.hosts["a"]
    run.running(a.address, 1)
    assert run.rc == 1
    assert "2 of 8 hosts converged (2 changed), 6 failed in" in run.stdout
    assert run.seconds < 420
    assert len([line for line in run.stdout.splitlines() if " FAILED: " in line]) == 6


def test_a_second_provision_of_the_same_fleet_is_refused(classroom):
    second, run = classroom["second"], classroom["run"]
    assert second.rc == 1 and second.seconds < 30
    assert f"fleet: another fleet command is working on this fleet: `fab provision` (PID {run.proc.pid}, since " \
        in second.stderr
    assert second.stdout == ""


def test_teardown_during_a_run_is_refused(classroom):
    teardown, run = classroom["teardown"], classroom["run"]
    assert teardown.rc == 1 and f"`fab provision` (PID {run.proc.pid}" in teardown.stderr
    assert "removed" not in teardown.stdout


def test_status_beside_a_run_writes_nothing(lab, classroom):
    status, run = classroom["status"], classroom["run"]
    assert f"`fab provision` (PID {run.proc.pid}, since" in status.stderr
    assert "this status shows the hosts as they are and writes nothing" in status.stderr
    assert classroom["state_untouched"]
    assert lab.hosts["a"].address in status.stdout


def test_rerun_after_the_faults_converges(lab, classroom):
    rerun, a, b, c = classroom["rerun"], lab.hosts["a"], lab.hosts["b"], lab.hosts["c"]
    assert rerun.rc == 0, rerun.text
    for h in (a, b, c):
        rerun.running(h.address, 1)
    assert "3 of 3 hosts converged (1 changed)" in rerun.stdout
    if classroom["dpkg_audit"].strip():  # the stop left dpkg half done: the re-run finished its work first
        assert f"{b.address}: waiting for dpkg --configure -a to finish an interrupted package installation" \
            in rerun.stderr
    print("dpkg after the stop:", classroom["stopped"], "audit:", classroom["dpkg_audit"][:300])


# --- the rest of the faults, one run each -------------------------------------------

def test_sudo_password_with_shell_metacharacters_works_and_runs_nothing(lab, classroom):
    a = lab.hosts["a"]
    inv = lab.inventory("faultspw", [f"{{address: {a.address}, port: 2202, user: pwuser}}"], publish=9150)
    wrong = lab.run("provision", "--hosts", str(inv), env={"FABRIC_SUDO_PASSWORD": "not it"})
    assert wrong.rc == 1
    wrong.failed(f"{a.address}:2202", "the sudo password given for user 'pwuser' was not accepted on this host")
    ok = lab.run("provision", "--hosts", str(inv), env={"FABRIC_SUDO_PASSWORD": PASSWORD})
    assert ok.rc == 0, ok.text
    ok.running(f"{a.address}:2202", 1)
    assert admin(a, "ls /tmp/fleet-pwned-pw 2>/dev/null || echo absent").strip() == "absent"
    assert "pa$(touch" not in admin(a, "journalctl --no-pager -q _COMM=sudo 2>/dev/null; true")
    assert lab.run("teardown", "--hosts", str(inv), "--yes", env={"FABRIC_SUDO_PASSWORD": PASSWORD}).rc == 0


def sending(lab: Lab, fleet: str, publish: int) -> tuple[object, Path, Fab]:
    """A provision of ``fleet`` onto host B that is sending B the big image right now: (B, inventory, run)."""
    b = lab.hosts["b"]
    inv = lab.inventory(fleet, [b.address], image=BIG, publish=publish)
    admin(b, f"docker rm -f $(docker ps -aq --filter label=fleet.name={fleet}) 2>/dev/null; "
             f"docker rmi -f {BIG} >/dev/null 2>&1; true")  # so that this run sends the image again
    run = Fab(lab, "provision", "--hosts", str(inv))
    run.when(rf"{re.escape(b.address)}: send image {BIG}", timeout=120)
    return b, inv, run


def converges_again(lab: Lab, inv: Path, host) -> None:
    """A plain re-run finishes the job: exit 0, the host's seat running."""
    again = lab.run("provision", "--hosts", str(inv))
    assert again.rc == 0, again.text
    again.running(host.address, 1)


def test_network_cut_in_the_middle_of_an_image_transfer(lab, classroom):
    b, inv, run = sending(lab, "faultsnet", 9200)
    admin(b, STALL)  # still sending when the cable goes, however fast this machine is
    admin(b, CUT)
    cut_at = time.monotonic() - run.started
    try:
        run.wait(120)
    finally:
        admin(b, UNCUT)
        admin(b, UNSTALL)
    assert run.rc == 1
    run.failed(b.address, f"lost contact with {b.address}: no answer for", f"during: send image {BIG}")
    assert run.seconds - cut_at < 45, run.seconds - cut_at
    converges_again(lab, inv, b)


def test_ctrl_c_during_a_transfer_lets_it_finish_then_stops_with_a_summary(lab, classroom):
    b, inv, run = sending(lab, "faultsint", 9250)
    sent = run.signal(signal.SIGINT, group=True)  # a terminal's Ctrl-C reaches the whole process group
    run.wait(60)
    assert run.rc == 130
    assert run.seconds - sent < 25, run.seconds - sent
    line = run.failed(b.address, "interrupted (SIGINT)")
    assert "before: " in line or f"during: send image {BIG}" in line, line
    assert "0 of 1 hosts converged" in run.stdout
    assert run.stderr.splitlines()[-1] == "fleet: interrupted (SIGINT); run the same command again to finish the job"
    lab.state_of("faultsint")  # still valid JSON
    converges_again(lab, inv, b)


def test_sigterm_then_ctrl_c_stops_at_once(lab, classroom):
    b, inv, run = sending(lab, "faultsint", 9250)
    admin(b, STALL)  # the transfer is under way and cannot finish by itself
    try:
        run.signal(signal.SIGTERM)
        time.sleep(0.3)
        second = run.signal(signal.SIGINT, group=True)
        run.wait(60)
    finally:
        admin(b, UNSTALL)
    assert run.rc == 143
    assert run.seconds - second < 8, run.seconds - second
    run.failed(b.address, f"interrupted (SIGTERM) during: send image {BIG}")
    assert "closing every connection now" in run.stderr
    lab.state_of("faultsint")
    converges_again(lab, inv, b)


# Moments: while Python starts, as hosts finish, while the table is printed, as the summary is printed.
# SIGTERM while Python is still starting kills it silently (exit -15), as for any program; Ctrl-C is sent
# only once the command runs (before that, Python prints its own KeyboardInterrupt).
@pytest.mark.parametrize("moment, sig", [(0.2, signal.SIGTERM), (r"^\[1/3\] ", signal.SIGINT),
                                         (r"^\[2/3\] ", signal.SIGTERM), (r"^HOST ", signal.SIGINT),
                                         (r"hosts converged", signal.SIGTERM)])
def test_a_signal_at_any_moment_leaves_valid_state_and_the_next_run_converges(lab, classroom, moment, sig):
    inv = lab.notes["good"]
    run = Fab(lab, "provision", "--hosts", str(inv))
    if isinstance(moment, float):
        time.sleep(moment)
    else:
        try:
            run.when(moment, timeout=60)
        except AssertionError:
            pass  # the run ended before that line: the signal comes after it
    try:
        run.signal(sig, group=sig == signal.SIGINT)
    except ProcessLookupError:
        pass
    run.wait(60)
    # 0: the work was done; 130/143: stopped with a summary; -15: killed before fleet's handlers existed
    assert run.rc in (0, 130, 143, -signal.SIGTERM), run.rc
    assert run.seconds < 30
    json.loads((lab.state / "faults.json").read_text())
    again = lab.run("provision", "--hosts", str(inv))
    assert again.rc == 0 and "3 of 3 hosts converged (0 changed)" in again.stdout, again.text


@pytest.mark.parametrize("damage", ["truncated", "garbage", "not UTF-8", "wrong shape", "deleted"])
def test_damaged_or_lost_state_is_recovered_from_the_hosts(lab, classroom, damage):
    inv, a = lab.notes["good"], lab.hosts["a"]
    path = lab.state / "faults.json"
    good = [lab.hosts[h].address for h in "abc"]
    before = {h: lab.state_of("faults")["secrets"][h] for h in good}
    ids = admin(a, "docker ps -q --no-trunc --filter label=fleet.name=faults")
    text = path.read_text()
    {"truncated": lambda: path.write_text(text[: len(text) // 2]),
     "garbage": lambda: path.write_text("}{ not json"),
     "not UTF-8": lambda: path.write_bytes(b"\xff\xfe\x00{"),
     "wrong shape": lambda: path.write_text('{"version": 1, "fleet": "faults", "secrets": ["x"]}'),
     "deleted": lambda: path.unlink()}[damage]()
    if damage != "deleted":  # the handout (which contacts no host) sets it aside and sends the teacher to provision
        handout = lab.run("handout", "--hosts", str(inv))
        assert handout.rc == 1 and f"fleet: the state file {path} was damaged (" in handout.stderr
        assert f"run fab provision --hosts {inv} first" in handout.stderr
    run = lab.run("provision", "--hosts", str(inv))
    assert run.rc == 0 and "3 of 3 hosts converged (0 changed)" in run.stdout, run.text
    for h in ("a", "b", "c"):
        assert f"{lab.hosts[h].address}: kept the credentials of 1 running seat(s), read back from the host" \
            in run.stderr
    assert {h: lab.state_of("faults")["secrets"][h] for h in good} == before  # students keep their passwords
    assert admin(a, "docker ps -q --no-trunc --filter label=fleet.name=faults") == ids  # nothing was replaced
    for secret in (s for seats in before.values() for s in seats.values()):
        assert secret not in run.text
    aside = list(lab.state.glob("faults.json.damaged-*"))
    modes = [stat.S_IMODE(p.stat().st_mode) for p in aside]
    for p in aside:
        p.unlink()
    assert modes == ([] if damage == "deleted" else [0o600]), aside


def test_seat_port_already_taken(lab, classroom):
    a, c = lab.hosts["a"], lab.hosts["c"]
    subprocess.run(["docker", "exec", "-d", c.container, "python3", "-m", "http.server", "9300"], check=True, timeout=30)
    try:
        end = time.monotonic() + 20
        while "9300" not in admin(c, "ss -ltn 2>/dev/null || cat /proc/net/tcp"):
            assert time.monotonic() < end
            time.sleep(0.2)
        run = lab.run("provision", "--hosts", str(lab.inventory("faultsport", [a.address, c.address], publish=9300)))
    finally:
        admin(c, "pkill -f 'http.server 930[0]' || true")
    assert run.rc == 1
    line = run.failed(c.address, "port 9300 ", "is already used by another program on this host")
    assert "faultsport-app-1" in line, line
    run.running(a.address, 1)
    assert run.seconds < 60


def test_disk_too_full_to_load_the_image(lab, classroom):
    a, c = lab.hosts["a"], lab.hosts["c"]
    admin(c, "systemctl stop docker docker.socket && mount -t tmpfs -o size=32m fleet-full /var/lib/docker "
             "&& systemctl start docker && timeout 60 sh -c 'until docker info >/dev/null 2>&1; do sleep 0.5; done' "
             "&& avail=$(df -k --output=avail /var/lib/docker | tail -n 1) "
             "&& head -c $(( (avail - 256) * 1024 )) /dev/zero > /var/lib/docker/fleet-fill")
    try:
        run = lab.run("provision", "--hosts", str(lab.inventory("faultsdisk", [a.address, c.address], publish=9350)))
    finally:
        admin(c, "systemctl stop docker docker.socket; umount /var/lib/docker; systemctl start docker")
    assert run.rc == 1
    run.failed(c.address, f"the host's disk is full: send image {IDLE} from this computer failed:",
               "no space left on device")
    run.running(a.address, 1)
    assert run.seconds < 90


def test_image_that_does_not_exist(lab, classroom):
    a = lab.hosts["a"]
    # A real registry on A (Debian's docker-registry, without auth), so "does not exist" is the registry's answer.
    admin(a, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry >/dev/null "
             "&& sed -i '/^auth:/,/^    path:/d' /etc/docker/registry/config.yml && systemctl restart docker-registry "
             f"&& timeout 30 sh -c 'until docker tag {IDLE} localhost:5000/fleet/idle:1 "
             "&& docker push -q localhost:5000/fleet/idle:1 >/dev/null; do sleep 1; done'", timeout=300)
    services = (SERVICE.format(svc="good", image="localhost:5000/fleet/idle:1", publish=9400, seats=1, push="false",
                               extra="")
                + SERVICE.format(svc="typo", image="localhost:5000/fleet/no-such-image:1", publish=9410, seats=1,
                                 push="false", extra=""))
    run = lab.run("provision", "--hosts", str(lab.inventory("faultsimg", [a.address], services=services)))
    assert run.rc == 1 and run.seconds < 60
    run.failed(a.address, "pull image localhost:5000/fleet/no-such-image:1 failed: manifest for "
                          "localhost:5000/fleet/no-such-image:1 not found: manifest unknown")
    asked = admin(a, "journalctl -u docker-registry --no-pager -q | grep -c '\"[A-Z]* /v2/fleet/no-such-image/manifests' "
                     "|| true")
    assert int(asked) <= 2, asked  # one HEAD and one GET: no retry storm
    dns = lab.run("provision", "--hosts", str(lab.inventory("faultsimg", [a.address], image="registry.invalid/x:1",
                                                            push=False, publish=9420, file="faultsimg-dns.yml")))
    assert dns.rc == 1 and dns.seconds < 60
    dns.failed(a.address, "pull image registry.invalid/x:1 failed:", "registry.invalid")
    assert lab.run("teardown", "--hosts", str(lab.work / "faultsimg.yml"), "--yes").rc == 0


def test_seats_that_exit_at_once_or_after_8_s_are_reported_as_soon_as_they_stop(lab, classroom):
    a = lab.hosts["a"]
    services = (SERVICE.format(svc="app", image=CRASH, publish=9450, seats=2, push="true", extra="")
                + SERVICE.format(svc="late", image=LATE, publish=9460, seats=1, push="true", extra=""))
    inv = lab.inventory("faultscrash", [a.address], services=services)
    run = lab.run("provision", "--hosts", str(inv))
    # reported when the late one stops (8 s after it started), not after its 60 s ready_timeout
    assert run.rc == 1 and run.seconds < 50, run.seconds
    line = run.failed(a.address, "faultscrash-app-1, faultscrash-app-2 keep stopping (exit code 3, restarted",
                      "time", "fatal: /etc/app.conf is missing",
                      "faultscrash-late-1 keeps stopping (exit code 4, restarted 1 time): fatal: licence server unreachable")
    token = lab.state_of("faultscrash")["secrets"][a.address]["faultscrash-app-1"]
    assert token not in line
    assert lab.run("teardown", "--hosts", str(inv), "--yes").rc == 0  # and nothing keeps restarting


# --- shell metacharacters on a real host ---------------------------------------------------

HOSTILE = {
    "SUBST": "$(touch /tmp/fleet-pwned-1)",
    "BACKTICK": "`touch /tmp/fleet-pwned-2`",
    "SEMI": "x; touch /tmp/fleet-pwned-3; y",
    "QUOTES": "it's \"quoted\" 'twice'",
    "PIPE": "a | touch /tmp/fleet-pwned-4 & b > /tmp/fleet-pwned-5",
    "DOLLAR": "$HOME ${PATH} $1 $$ $?",
    "BACKSLASH": "C:\\new\\table \\\\ \\",
    "SPACES": "  leading and trailing  ",
    "TAB": "a\tb",
    "GLOB": "* ? [a-z] ~",
    "UNICODE": "Grüße, 日本語, 😀, ‮rtl",
    "EMPTY": "",
    "EQUALS": "a=b=c",
    "PERCENT": "%s %n %x",
    "NEWLINE_LIKE": "\\n is not a newline",
}


def test_shell_metacharacters_in_values_arrive_byte_for_byte_and_run_nothing(lab, classroom, tmp_path):
    a = lab.hosts["a"]
    weird = tmp_path / "dir with $(touch fleet-pwned-6) `and` 'quotes'; x"
    weird.mkdir()
    key = weird / "key $(touch fleet-pwned-7)"
    key.write_bytes(lab.key.read_bytes())
    key.chmod(0o600)
    env = ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in HOSTILE.items())
    services = SERVICE.format(svc="app", image=IDLE, publish=9500, seats=1, push="true", extra=f", env: {{{env}}}")
    text = INVENTORY.format(name="faultsmeta", key=json.dumps(str(key)), hosts=f"  - {a.address}\n", timeouts="",
                            services=services)
    inv = weird / "lab $(touch fleet-pwned-8).yml"
    inv.write_text(text)
    run = Fab(lab, "provision", "--hosts", str(inv), env={"FLEET_STATE_DIR": str(weird / "state $(touch x)")}).wait()
    assert run.rc == 0, run.text
    got = json.loads(admin(a, "docker inspect --format '{{json .Config.Env}}' faultsmeta-app-1"))
    env_in = dict(item.split("=", 1) for item in got)
    for k, v in HOSTILE.items():
        assert env_in[k] == v, (k, env_in[k], v)
    assert admin(a, "find / -xdev -name 'fleet-pwned*' 2>/dev/null; ls /tmp") .count("fleet-pwned") == 0
    assert not list(tmp_path.rglob("fleet-pwned*")) and not list(Path("/tmp").glob("fleet-pwned*"))
    assert not list(Path(ROOT).glob("fleet-pwned*")) and not list(lab.work.glob("fleet-pwned*"))
    assert (weird / "state $(touch x)" / "faultsmeta.json").exists()
    assert Fab(lab, "teardown", "--hosts", str(inv), "--yes",
               env={"FLEET_STATE_DIR": str(weird / "state $(touch x)")}).wait().rc == 0
