"""fleet against Ansible and pyinfra on the same real test hosts.

    python -m benchmarks setup                        # benchmarks/.venv: ansible + pyinfra from PyPI (once)
    python -m benchmarks run [--scenario converged,seats,fresh,push,classroom] [--hosts 1,8,20] [--repeat 5]
                             [--tools fleet,ansible,pyinfra,naive] [--shape 100mbit] [--out benchmarks/results.json]
    python -m benchmarks report [benchmarks/results.json ...]   # the table again (files merged), for RESULTS.md

``--hosts`` replaces the sizes of every scenario given (defaults: converged
1,8,20; seats 1,8; fresh 1,4; push 1,8; classroom 10). Test hosts are labelled
``fleet-practice=bench-XXXXXX`` and removed at the end (also on failure).
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from pathlib import Path

from benchmarks import report
from benchmarks.run import DEFAULT_SIZES, SCENARIOS, Bench, Config
from benchmarks.tools import HERE, PEERS


def setup() -> int:
    venv = HERE / ".venv"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(HERE / "requirements.txt")], check=True)
    print(f"peers installed in {venv}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("setup", help="install Ansible and pyinfra into benchmarks/.venv")
    run = sub.add_parser("run", help="start test hosts, run the scenarios, print the table")
    run.add_argument("--scenario", default=",".join(SCENARIOS), help="comma-separated: " + ", ".join(SCENARIOS))
    run.add_argument("--hosts", default="", help="host counts, e.g. 1,8,20 (default: per scenario)")
    run.add_argument("--repeat", type=int, default=5, help="timed runs per tool and cell (default 5)")
    run.add_argument("--tools", default="fleet,ansible,pyinfra",
                     help="comma-separated: fleet, ansible, ansible-warm, pyinfra, naive")
    run.add_argument("--out", default=str(HERE / "results.json"))
    run.add_argument("--work", default="/tmp/fleet-bench", help="scratch: keys, inventories, logs, archives")
    run.add_argument("--max-load", type=float, default=2.0, help="wait for the load average to drop below this")
    run.add_argument("--load-wait", type=float, default=300, help="... but at most this many seconds per cell")
    run.add_argument("--shape", default="", help="limit this computer's uplink to the hosts, e.g. 100mbit (tc on docker0)")
    run.add_argument("--keep", action="store_true", help="leave the test hosts running (remove with "
                                                          "`python -m practice down --label LABEL`)")
    rep = sub.add_parser("report", help="print the table of a results file")
    rep.add_argument("results", nargs="*", default=[str(HERE / "results.json")],
                     help="one or more results files (rows of later files are added to the first's)")
    args = parser.parse_args(argv)

    if args.command == "setup":
        return setup()
    if args.command == "report":
        merged = json.loads(Path(args.results[0]).read_text())
        for extra in args.results[1:]:
            more = json.loads(Path(extra).read_text())
            merged["rows"] += more["rows"]
            merged.setdefault("archives", {}).update(more.get("archives", {}))
        print(report.render(merged))
        return 0
    scenarios = [s for s in args.scenario.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    tools = [t for t in args.tools.split(",") if t]
    if any(t != "fleet" for t in tools) and not (PEERS / "ansible-playbook").exists():
        parser.error("the peers are not installed: run `python -m benchmarks setup` first")
    sizes = dict(DEFAULT_SIZES)
    if args.hosts:
        counts = [int(x) for x in args.hosts.split(",") if x]
        sizes.update({s: counts for s in scenarios})
    cfg = Config(scenarios, sizes, args.repeat, tools, Path(args.out), Path(args.work), args.max_load,
                 args.load_wait, args.keep, args.shape)
    # Interrupted or terminated (also when started in the background, where SIGINT comes ignored):
    # unwind, so that the test hosts are removed.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    bench = Bench(cfg)
    try:
        bench.run()
    finally:
        print(report.render(bench.results))
        print(f"\nresults: {cfg.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
