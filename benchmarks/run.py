"""Scenarios: start hosts, run each tool several times, time and count, write results JSON.

Timed: only the tool's own command, from start to exit (wall seconds), with
its CPU seconds and peak RSS (os.wait4: the process and the children it
waited for; for Ansible the largest of its forks). Untimed: starting hosts,
putting them back in the scenario's starting state (docker exec), reading
the sshd journals. Tools take turns run by run (fleet, Ansible, pyinfra,
then Ansible, pyinfra, fleet, ...), so that a burst of load from the other
work on this machine does not fall on one tool only.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from benchmarks import hosts as bh
from benchmarks import tools as bt
from practice.images import JUPYTER_IMAGE, ensure_jupyter_image

SCENARIOS = ("converged", "seats", "fresh", "push", "classroom")
DEFAULT_SIZES = {"converged": [1, 8, 20], "seats": [1, 8], "fresh": [1, 4], "push": [1, 8], "classroom": [10]}
ANSWER_WAIT = 900  # seconds after a tool's start within which every seat must answer (classroom)


@dataclass
class Config:
    scenarios: list[str]
    sizes: dict[str, list[int]]
    repeat: int
    tools: list[str]
    out: Path
    work: Path
    max_load: float
    load_wait: float
    keep: bool = False
    shape: str = ""  # e.g. "100mbit": this computer's uplink to the hosts (tc on docker0; hosts among themselves unshaped)


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    docker = bh.sh(["docker", "version", "--format", "{{.Server.Version}}"], check=False).strip()
    versions = {}
    for tool, argv in (("ansible-core", [str(bt.PEERS / "ansible"), "--version"]),
                       ("pyinfra", [str(bt.PEERS / "pyinfra"), "--version"])):
        out = bh.sh(argv, check=False)
        versions[tool] = out.splitlines()[0] if out else "?"
    collection = bt.HERE / ".venv" / "lib"
    manifests = list(collection.glob("python3*/site-packages/ansible_collections/community/docker/MANIFEST.json"))
    if manifests:
        versions["community.docker"] = json.loads(manifests[0].read_text())["collection_info"]["version"]
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem / 1024 / 1024, 1),
            "kernel": platform.release(), "python": platform.python_version(), "docker": docker,
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), **versions}


def wait_for_quiet(cfg: Config, log) -> float:  # noqa: ANN001
    """Wait (bounded) until the 1-minute load average is under cfg.max_load; return the load measured under."""
    end = time.monotonic() + cfg.load_wait
    load = os.getloadavg()[0]
    told = False
    while load >= cfg.max_load and time.monotonic() < end:
        if not told:
            log(f"load average {load:.1f} >= {cfg.max_load}: waiting up to {cfg.load_wait:.0f} s for it to drop")
            told = True
        time.sleep(5)
        load = os.getloadavg()[0]
    return load


def timed(cmd: bt.Command, log_path: Path) -> dict:
    with log_path.open("wb") as out:
        started_epoch, started = time.time(), time.monotonic()
        proc = subprocess.Popen(cmd.argv, cwd=cmd.cwd, env=bt.environment(cmd), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        ended_epoch = time.time()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall": wall, "rc": proc.returncode, "cpu": usage.ru_utime + usage.ru_stime, "rss_kb": usage.ru_maxrss,
            "start": started_epoch, "end": ended_epoch, "log": str(log_path)}


class Bench:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.label = f"bench-{uuid.uuid4().hex[:6]}"
        cfg.work.mkdir(parents=True, exist_ok=True)
        self.pool = bh.Pool(self.label, cfg.work / "keys")
        self.results: dict = {"machine": machine(), "label": self.label, "repeat": cfg.repeat, "rows": []}
        self.run_no = 0

    def log(self, line: str) -> None:
        print(f"bench: {line}", file=sys.stderr, flush=True)

    def save(self) -> None:
        self.cfg.out.write_text(json.dumps(self.results, indent=1))

    def tools(self) -> list[bt.Tool]:
        if not hasattr(self, "_tools"):
            self._tools = [bt.TOOLS[name](self.cfg.work, self.pool.key, self.pool.known_hosts) for name in self.cfg.tools]
        return self._tools

    # --- one batch: a scenario at one size, every tool, repeated ---------------

    def batch(self, scenario: str, hosts_for, job: bt.Job, reset, *, warm_up: bool) -> None:  # noqa: ANN001
        n = len(hosts_for(0, None))
        tools = self.tools()
        rows = {t.name: {"scenario": scenario, "n": n, "tool": t.name, "shape": self.cfg.shape, "runs": []}
                for t in tools}
        load = wait_for_quiet(self.cfg, self.log)
        if warm_up:
            for t in tools:
                hosts = hosts_for(0, t)
                r = self.one(t, hosts, job, f"{scenario}-{n}-warmup")
                if r["rc"] != 0:
                    raise RuntimeError(f"{t.name} warm-up failed, see {r['log']}")
        for rep in range(self.cfg.repeat):
            order = tools[rep % len(tools):] + tools[:rep % len(tools)]
            for t in order:
                hosts = hosts_for(rep, t)
                if reset:
                    bh.parallel(lambda h, t=t: reset(h, t), hosts)
                since = time.time() - 2
                load = os.getloadavg()[0]
                cpu_before = [h.cpu_seconds() for h in hosts]
                r = self.one(t, hosts, job, f"{scenario}-{n}-{rep}")
                if scenario == "classroom" and r["rc"] == 0:
                    r["answering"] = answering(t.secrets(hosts, job), r["start"])
                    self.log(f"classroom N={n} {t.name} #{rep + 1}: every seat answering "
                             f"{r['answering'] if r['answering'] is not None else 'never'} s after the start")
                r["hosts_cpu"] = sum(h.cpu_seconds() for h in hosts) - sum(cpu_before)
                r["load"] = load
                events = bh.parallel(lambda h, since=since: bh.sshd_events(h, since), hosts)
                r["counts"] = bh.count_window(events, r["start"], r["end"], self.pool.gateway)
                output = Path(r["log"]).read_text(errors="replace")
                r["converged"] = t.converged(output)
                if r["rc"] != 0:
                    self.log(f"{t.name} {scenario} N={n} run {rep}: exit {r['rc']}, see {r['log']}")
                rows[t.name]["runs"].append(r)
                self.log(f"{scenario} N={n} {t.name} #{rep + 1}: {r['wall']:.2f} s (rc {r['rc']}, load {load:.1f}, "
                         f"conn/host {_mean(r['counts']['connections']):.1f}, "
                         f"sessions/host {_mean(r['counts']['sessions']):.1f})")
        self.results["rows"] += list(rows.values())
        self.save()

    def one(self, tool: bt.Tool, hosts: list[bh.Host], job: bt.Job, tag: str) -> dict:
        self.run_no += 1
        cmd = tool.command(hosts, job, self.run_no)
        r = timed(cmd, tool.work / f"{tag}.log")
        tool.after(cmd)
        if cmd.stats and cmd.stats.exists():
            r["fleet"] = json.loads(cmd.stats.read_text())
        return r

    # --- scenarios ------------------------------------------------------------

    def run(self) -> None:
        cfg = self.cfg
        bh.build_images()
        if cfg.shape:
            shape(cfg.shape)
            self.results["machine"]["shape"] = cfg.shape
        seat_job = bt.Job(bh.SEAT_IMAGE, "generic", self.archive(bh.SEAT_IMAGE))
        need = max([n for s in ("converged", "seats", "push") if s in cfg.scenarios for n in cfg.sizes[s]] or [0])
        try:
            if need:
                self.log(f"starting {need} test hosts with Docker")
                self.pool.start(need, bh.HOST_DOCKER, "d")
            pool = [h for h in self.pool.hosts]
            if "seats" in cfg.scenarios:
                for n in cfg.sizes["seats"]:
                    self.batch("seats", lambda rep, t, n=n: pool[:n], seat_job,
                               lambda h, t: bh.reset_containers(h, t.prefix), warm_up=False)
            if "converged" in cfg.scenarios:
                for n in cfg.sizes["converged"]:
                    self.batch("converged", lambda rep, t, n=n: pool[:n], seat_job, None, warm_up=True)
            if "push" in cfg.scenarios:
                ensure_jupyter_image()
                push_job = bt.Job(JUPYTER_IMAGE, "jupyter", self.archive(JUPYTER_IMAGE))
                for n in cfg.sizes["push"]:
                    # every tool's seats go, not only this tool's: a layer that another tool's container still
                    # uses would stay on the host, and loading the image again would then skip its work
                    self.batch("push", lambda rep, t, n=n: pool[:n], push_job,
                               lambda h, t: [bh.reset_containers(h, x.prefix, image=JUPYTER_IMAGE)
                                             for x in self.tools()], warm_up=False)
                for h in pool:  # the 481 MB image and its archive, off the hosts again
                    for x in self.tools():
                        bh.reset_containers(h, x.prefix, image=JUPYTER_IMAGE)
            if "fresh" in cfg.scenarios:
                for n in cfg.sizes["fresh"]:
                    self.fresh(n, seat_job)
            if "classroom" in cfg.scenarios:
                ensure_jupyter_image()
                job = bt.Job(JUPYTER_IMAGE, "jupyter", self.archive(JUPYTER_IMAGE), seats=3)
                for n in cfg.sizes["classroom"]:
                    self.fresh(n, job, "classroom")
        finally:
            if cfg.shape:
                shape("")
            if not cfg.keep:
                self.pool.remove()
            self.save()

    def fresh(self, n: int, job: bt.Job, scenario: str = "fresh") -> None:
        """New hosts without Docker for every run of every tool (started untimed, removed after)."""
        fresh: dict[tuple[int, str], list[bh.Host]] = {}

        def hosts_for(rep: int, tool) -> list[bh.Host]:  # noqa: ANN001
            if tool is None:
                return [None] * n
            key = (rep, tool.name)
            if key not in fresh:
                for old in list(fresh):
                    self.pool.remove(fresh.pop(old))
                fresh[key] = self.pool.start(n, bh.HOST_FRESH, f"f{self.run_no + 1}-")
                tool.forget()  # new servers: fleet forgets the old ones' pinned host keys
            return fresh[key]

        try:
            self.batch(scenario, hosts_for, job, None, warm_up=False)
        finally:
            for hs in fresh.values():
                self.pool.remove(hs)

    def archive(self, image: str) -> Path:
        path = self.cfg.work / f"{image.replace(':', '_').replace('/', '_')}.tar"
        if not path.exists():
            started = time.monotonic()
            with path.open("wb") as f:
                subprocess.run(["docker", "save", image], stdout=f, check=True, timeout=900)
            self.results.setdefault("archives", {})[image] = {"bytes": path.stat().st_size,
                                                              "docker_save_s": round(time.monotonic() - started, 1)}
        return path


def shape(rate: str, device: str = "docker0") -> None:
    """Limit what this computer sends to the test hosts to ``rate`` (a teacher's uplink); "" lifts it.

    Only packets from this computer's own address on the bridge are limited
    (an htb class picked by source address): the hosts' downloads from the
    Debian mirror and their traffic among themselves stay unshaped.
    """
    subprocess.run(["tc", "qdisc", "del", "dev", device, "root"], capture_output=True, timeout=30)
    if not rate:
        return
    address = bh.sh(["ip", "-4", "-o", "addr", "show", device]).split()[3].split("/")[0]
    for argv in (["qdisc", "add", "dev", device, "root", "handle", "1:", "htb", "default", "20"],
                 ["class", "add", "dev", device, "parent", "1:", "classid", "1:10", "htb", "rate", rate, "ceil", rate],
                 ["class", "add", "dev", device, "parent", "1:", "classid", "1:20", "htb", "rate", "10gbit"],
                 ["filter", "add", "dev", device, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
                  "match", "ip", "src", f"{address}/32", "flowid", "1:10"]):
        bh.sh(["tc", *argv], timeout=30)


def answering(secrets: dict[tuple[str, int], str], started: float) -> float | None:
    """Seconds from ``started`` (epoch) until every Jupyter seat answers /api/status with its token (200)."""
    def one(item: tuple[tuple[str, int], str]) -> float | None:
        (address, port), token = item
        request = urllib.request.Request(f"http://{address}:{port}/api/status", headers={"Authorization": f"token {token}"})
        while time.time() - started < ANSWER_WAIT:
            try:
                with urllib.request.urlopen(request, timeout=3) as r:
                    if r.status == 200:
                        return time.time() - started
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        return None

    with ThreadPoolExecutor(max_workers=min(32, len(secrets) or 1)) as pool:
        times = list(pool.map(one, secrets.items()))
    return None if any(t is None for t in times) else round(max(times), 2)


def _mean(values: list[int]) -> float:
    return statistics.mean(values) if values else 0.0
