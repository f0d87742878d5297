"""The same job for fleet, Ansible and pyinfra, and how to run each.

The job on every host: Docker present (Debian's docker.io, service running),
the seat image from this computer, a private network, and two seat containers
with a memory limit (swap capped at the same), a CPU limit, an env file of
mode 0600 holding the seat's secret, and a published port each.

- fleet: ``fab provision`` with ``tls: off`` (no Caddy proxy: the peers run
  none either, so seats publish their own ports), ``push: true``,
  ``docker: {source: distro}``, ``parallel: N``.
- Ansible (ansible-core + community.docker, from the ``ansible`` package):
  benchmarks/playbook.yml, ``forks = N``, pipelining on, no fact gathering,
  the interpreter given (no discovery), OpenSSH with Ansible's default
  ControlMaster/ControlPersist, every run cold (its own control path
  directory, masters closed after the run; ``ansible-warm`` keeps them, as a
  teacher's second run within 60 s would).
- pyinfra: benchmarks/deploy.py, ``--parallel N``, its own docker
  operations (container limits included) and one guarded ``server.shell``
  for ``docker load`` (pyinfra has no load operation).

Each tool has its own container names and ports (fleet 8000+, Ansible 8100+,
pyinfra 8200+), so all three live side by side on the same hosts.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchmarks.hosts import ROOT, Host

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".venv" / "bin"
FAB = ROOT / ".venv" / "bin" / "fab"


@dataclass(frozen=True)
class Job:
    image: str
    kind: str  # generic (busybox seat) | jupyter
    archive: Path  # docker save of the image, for the peers to copy (fleet streams it itself)
    memory: str = "256m"
    cpus: float = 0.5
    seats: int = 2
    docker_present: bool = True  # the fleet's inventory: whether hosts come with Docker (fresh: they do not)

    @property
    def token_env(self) -> str:
        return "JUPYTER_TOKEN" if self.kind == "jupyter" else "TOKEN"


@dataclass
class Command:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    stats: Path | None = None  # fleet's FLEET_STATS file


class Tool:
    name = ""
    prefix = ""
    publish = 0

    def __init__(self, work: Path, key: Path, known_hosts: Path):
        self.work = work / self.name
        self.work.mkdir(parents=True, exist_ok=True)
        self.key, self.known_hosts = key, known_hosts
        self.tokens = [secrets.token_hex(16) for _ in range(8)]  # per tool, for the whole benchmark

    def command(self, hosts: list[Host], job: Job, run: int) -> Command:
        raise NotImplementedError

    def after(self, cmd: Command) -> None:
        """Untimed clean-up after a run (e.g. Ansible's SSH masters)."""

    def forget(self) -> None:
        """New servers at old addresses (fresh hosts): drop what the tool remembers of the old ones."""

    def converged(self, output: str) -> bool:
        """Did the tool report that it changed nothing?"""
        raise NotImplementedError

    def seats(self, job: Job) -> list[dict]:
        return [{"n": n, "port": self.publish + n - 1, "token": self.tokens[n - 1]} for n in range(1, job.seats + 1)]

    def secrets(self, hosts: list[Host], job: Job) -> dict[tuple[str, int], str]:
        """(host address, seat port) → the seat's token, to ask each seat whether it answers."""
        return {(h.address, s["port"]): s["token"] for h in hosts for s in self.seats(job)}


class Fleet(Tool):
    name, prefix, publish = "fleet", "fleet", 8000

    def command(self, hosts: list[Host], job: Job, run: int) -> Command:
        lines = [
            "name: fleet",
            f"ssh: {{user: root, key: {self.key}}}",
            "hosts:", *[f"  - {h.address}" for h in hosts],
            "docker: {source: distro}",
            "tls: off   # no proxy: the peers run none either",
            f"parallel: {len(hosts)}",
            "services:",
            "  - name: nb",
            f"    kind: {job.kind}",
            f"    image: {job.image}",
            "    port: 8888",
            f"    publish: {self.publish}",
            f"    seats: {job.seats}",
            f"    memory: {job.memory}",
            f"    cpus: {job.cpus}",
            "    push: true",
        ]
        if job.kind == "generic":
            lines.append("    secret_env: TOKEN")
        lab = self.work / "lab.yml"
        lab.write_text("\n".join(lines) + "\n")
        stats = self.work / f"stats-{run}.json"
        env = {"FLEET_STATE_DIR": str(self.work / "state"), "FLEET_STATS": str(stats)}
        return Command([str(FAB), "--search-root", str(ROOT), "provision", "--hosts", str(lab)], env, ROOT, stats)

    def converged(self, output: str) -> bool:
        return "(0 changed)" in output

    def forget(self) -> None:
        shutil.rmtree(self.work / "state", ignore_errors=True)

    def secrets(self, hosts: list[Host], job: Job) -> dict[tuple[str, int], str]:
        state = json.loads((self.work / "state" / "fleet.json").read_text())["secrets"]
        return {(h.address, self.publish + n - 1): state[h.address][f"fleet-nb-{n}"]
                for h in hosts for n in range(1, job.seats + 1)}


class Ansible(Tool):
    name, prefix, publish = "ansible", "ansible", 8100
    warm = False

    def command(self, hosts: list[Host], job: Job, run: int) -> Command:
        inventory = ["[seats]", *[f"{h.name} ansible_host={h.address}" for h in hosts], "", "[seats:vars]",
                     "ansible_user=root", f"ansible_ssh_private_key_file={self.key}",
                     "ansible_python_interpreter=/usr/bin/python3"]
        (self.work / "inventory.ini").write_text("\n".join(inventory) + "\n")
        control = self.work / ("cp" if self.warm else f"cp-{run}")
        control.mkdir(exist_ok=True)
        self._control = control
        (self.work / "ansible.cfg").write_text(f"""\
[defaults]
forks = {len(hosts)}
host_key_checking = True
gathering = explicit
interpreter_python = /usr/bin/python3
retry_files_enabled = False
[ssh_connection]
pipelining = True
ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={self.known_hosts} -o IdentitiesOnly=yes
control_path_dir = {control}
""")
        variables = {"prefix": self.prefix, "image": job.image, "archive": str(job.archive), "memory": job.memory,
                     "cpus": job.cpus, "token_env": job.token_env, "seats": self.seats(job)}
        (self.work / "vars.json").write_text(json.dumps(variables))
        env = {"ANSIBLE_CONFIG": str(self.work / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_LOCAL_TEMP": str(self.work / "tmp"), "ANSIBLE_HOME": str(self.work / "home")}
        argv = [str(PEERS / "ansible-playbook"), "-i", str(self.work / "inventory.ini"),
                "-e", f"@{self.work / 'vars.json'}", str(HERE / "playbook.yml")]
        return Command(argv, env, self.work)

    def after(self, cmd: Command) -> None:
        if self.warm:
            return
        close_masters(self._control)

    def converged(self, output: str) -> bool:
        recap = [line for line in output.splitlines() if " : ok=" in line]
        return bool(recap) and all(" changed=0 " in line for line in recap)


class AnsibleWarm(Ansible):
    """Ansible's second run within ControlPersist (60 s): its SSH masters are still open."""

    name = "ansible-warm"
    warm = True


def close_masters(directory: Path) -> None:
    """Close the SSH master connections Ansible left (ControlPersist), through their control sockets."""
    for sock in directory.iterdir() if directory.exists() else []:
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "benchmark-host"],
                       capture_output=True, timeout=30)


class Pyinfra(Tool):
    name, prefix, publish = "pyinfra", "pyinfra", 8200

    def command(self, hosts: list[Host], job: Job, run: int) -> Command:
        spec = {"hosts": [h.address for h in hosts], "key": str(self.key), "known_hosts": str(self.known_hosts),
                "prefix": self.prefix, "image": job.image, "archive": str(job.archive), "memory": job.memory,
                "cpus": job.cpus, "token_env": job.token_env, "seats": self.seats(job)}
        (self.work / "job.json").write_text(json.dumps(spec))
        env = {"BENCH_JOB": str(self.work / "job.json"), "PYINFRA_PROGRESS": "off"}
        argv = [str(PEERS / "pyinfra"), str(HERE / "inventory.py"), str(HERE / "deploy.py"), "-y",
                "--parallel", str(len(hosts))]
        return Command(argv, env, self.work)

    def converged(self, output: str) -> bool:
        """From pyinfra's results table: no operation but the guarded `docker load` shell ran a change."""
        if "--> Results:" not in output:
            return False
        table = output.split("--> Results:", 1)[1].splitlines()
        for line in table[2:]:
            cols = re.split(r"\s{2,}", line.strip())
            if not cols or cols[0].startswith("Grand total") or len(cols) < 5:
                break
            if cols[0] != "Image loaded" and cols[2] != "-":
                return False
        return True


class Naive(Tool):
    """What a teacher who knows Docker would script (benchmarks/naive.sh): the classroom scenario's baseline."""

    name, prefix, publish = "naive", "naive", 8300

    def command(self, hosts: list[Host], job: Job, run: int) -> Command:
        seats = ",".join(f"{s['n']}:{s['port']}:{s['token']}" for s in self.seats(job))
        argv = ["bash", str(HERE / "naive.sh"), str(self.key), str(self.known_hosts), job.image, job.memory,
                str(job.cpus), self.prefix, job.token_env, seats, *[h.address for h in hosts]]
        return Command(argv, {}, self.work)

    def converged(self, output: str) -> bool:
        return False  # it always does everything again


TOOLS = {t.name: t for t in (Fleet, Ansible, AnsibleWarm, Pyinfra, Naive)}


def environment(cmd: Command) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "FLEET_", "PYINFRA_"))}
    return {**env, **cmd.env}
