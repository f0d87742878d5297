"""mode: hub under a class: 60 students on 4 hosts, logging in over 60 s; beside fixed seats for the same class.

    .venv/bin/python -m benchmarks.hubbench [--students 60] [--hosts 4] [--spread 60] [--out FILE]

Real test hosts (Debian 12, Docker from Debian's packages installed by fleet),
the real hub and single-user images (images/hub, images/singleuser), the
real `fab`. Measured:

- hub: `fab provision` (swarm, hub, images), then each student logs in at
  their moment (spread evenly over ``--spread`` seconds) as a browser does
  (the login form, a token, /hub/spawn) and waits until their server answers
  /user/NAME/api/status: the time from login to answering, median and worst;
  the hub container's memory at the end; the servers per node against what
  they reserve (each server reserves the service's memory and cpus);
- fixed seats for the same class: `fab provision` with the students' seats
  spread over the same hosts (every seat answering when it returns).

Everything runs on this machine's 2 cores: the figures are what one laptop-sized
machine does with 60 Jupyter servers starting, not what a cloud does.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import requests

from fleet.hub.config import escaped
from practice import hosts as ph
from practice import images

ROOT = Path(__file__).resolve().parent.parent
FAB = [str(ROOT / ".venv" / "bin" / "fab"), "--search-root", str(ROOT)]


def fab(work: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    out = subprocess.run([*FAB, *args, "--plain"] if args[0] in ("provision", "teardown") else [*FAB, *args],
                         cwd=work, capture_output=True, text=True, timeout=3600,
                         env={**os.environ, "FLEET_STATE_DIR": str(work / "state")})
    return time.monotonic() - started, out


def login_and_wait(base: str, ca: str, user: str, password: str) -> float:
    """A student's login as a browser does it; seconds until their server answers."""
    started = time.monotonic()
    s = requests.Session()
    form = s.get(f"{base}/hub/login", timeout=60, verify=ca)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', form.text)
    r = s.post(f"{base}/hub/login?next=", data={"username": user, "password": password,
                                                **({"_xsrf": xsrf.group(1)} if xsrf else {})},
               allow_redirects=False, timeout=60, verify=ca)
    if r.status_code != 302:
        raise RuntimeError(f"{user}: login answered {r.status_code}")
    token = s.post(f"{base}/hub/api/users/{user}/tokens", json={"expires_in": 3600}, timeout=60, verify=ca,
                   headers={"X-XSRFToken": s.cookies.get("_xsrf", "")}).json()["token"]
    s.get(f"{base}/hub/spawn/{user}", timeout=120, allow_redirects=False, verify=ca)
    while time.monotonic() - started < 900:
        r = requests.get(f"{base}/user/{user}/api/status", headers={"Authorization": f"token {token}"}, timeout=30,
                         verify=ca, allow_redirects=False)
        if r.status_code == 200:
            return time.monotonic() - started
        time.sleep(1)
    raise RuntimeError(f"{user}: no server within 900 s")


def inventory(mode: str, key: Path, hosts: list, students: int) -> str:
    names = [f"Student {i:02d}" for i in range(1, students + 1)]
    common = (f"ssh: {{key: {key}}}\nhosts: [{', '.join(h.address for h in hosts)}]\ndocker: {{source: distro}}\n"
              f"tls: internal\nparallel: {len(hosts)}\nproxy: {{image: fleet-caddy:test, push: true}}\n"
              f"roster: [{', '.join(names)}]\n")
    if mode == "hub":
        return ("name: hbench\nmode: hub\n" + common +
                "hub: {port: 8443, image: fleet-hub:test, push: true, start_timeout: 900, idle_timeout: 0}\n"
                "services:\n  - {name: notebook, kind: jupyter, image: fleet-singleuser:test, memory: 256m, "
                "cpus: 0.1, push: true}\n")
    per_host = -(-students // len(hosts))
    return ("name: sbench\n" + common + "services:\n  - {name: notebook, kind: jupyter, image: fleet-jupyter:test, "
            f"memory: 256m, cpus: 0.1, seats: {per_host}, push: true, ready_timeout: 900}}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hubbench")
    parser.add_argument("--students", type=int, default=60)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--spread", type=float, default=60.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "hub.json"))
    args = parser.parse_args(argv)
    label = f"hbench-{uuid.uuid4().hex[:6]}"
    work = Path(f"/tmp/{label}")
    work.mkdir(parents=True)
    for tag in (images.ensure_testhost_image(), images.ensure_hub_image(), images.ensure_singleuser_image(),
                images.ensure_caddy_image(), images.ensure_jupyter_image()):
        print("image", tag, file=sys.stderr)
    key, pub = ph.make_keypair(work / "keys")
    result: dict = {"students": args.students, "hosts": args.hosts, "spread_s": args.spread,
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    try:
        hosts = ph.start_hosts([f"{label}-{i}" for i in range(1, args.hosts + 1)], pub, label=label)
        (work / "hub.yml").write_text(inventory("hub", key, hosts, args.students))
        seconds, out = fab(work, "provision", "--hosts", "hub.yml")
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        result["hub_provision_s"] = round(seconds, 1)
        _, out = fab(work, "handout", "--hosts", "hub.yml", "--format", "json", "--output", str(work / "cards.json"))
        cards = [c for c in json.loads((work / "cards.json").read_text()) if c["student"]]
        state = json.loads((work / "state" / "hbench.json").read_text())
        ca = work / "ca.pem"
        ca.write_text(state["proxy_ca"][hosts[0].address])
        base = f"https://{hosts[0].address}:8443"
        times: dict[str, float] = {}
        errors: list[str] = []

        def student(i: int, card: dict) -> None:
            time.sleep(i * args.spread / len(cards))
            try:
                times[card["user"]] = login_and_wait(base, str(ca), card["user"], card["secret"])
            except Exception as e:  # noqa: BLE001 - counted and shown
                errors.append(f"{card['user']}: {e}")

        started = time.monotonic()
        threads = [threading.Thread(target=student, args=(i, c)) for i, c in enumerate(cards)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result["all_answering_after_first_login_s"] = round(time.monotonic() - started, 1)
        values = sorted(times.values())
        result["login_to_answering_s"] = {"median": round(statistics.median(values), 1), "worst": round(values[-1], 1),
                                          "best": round(values[0], 1), "n": len(values)} if values else {}
        result["errors"] = errors
        manager = hosts[0].container
        mem = subprocess.run(["docker", "exec", manager, "docker", "stats", "--no-stream", "--format", "{{.MemUsage}}",
                              "hbench-hub"], capture_output=True, text=True, timeout=60).stdout.strip()
        result["hub_memory"] = mem
        placed = subprocess.run(["docker", "exec", manager, "sh", "-c",
                                 "docker service ls -q --filter label=fleet.name=hbench | xargs -r -n1 docker service ps "
                                 "--filter desired-state=running --format '{{.Node}}'"],
                                capture_output=True, text=True, timeout=120).stdout.split()
        result["servers_per_node"] = {n: placed.count(n) for n in sorted(set(placed))}
        result["reserved_per_server"] = {"cpus": 0.1, "memory": "256 MiB"}
        result["service_names_checked"] = all(escaped(c["user"]) for c in cards)
        fab(work, "teardown", "--hosts", "hub.yml", "--yes")
        (work / "seats.yml").write_text(inventory("seats", key, hosts, args.students))
        seconds, out = fab(work, "provision", "--hosts", "seats.yml")
        result["seats_provision_until_every_seat_answers_s"] = round(seconds, 1)
        result["seats_ok"] = out.returncode == 0
        fab(work, "teardown", "--hosts", "seats.yml", "--yes")
    finally:
        ph.remove_hosts(label)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
