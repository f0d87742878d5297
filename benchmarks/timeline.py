"""Where a converged re-run's time goes: per host, SSH connect and the fact probe, on fleet's own code path.

    .venv/bin/python -m benchmarks.timeline LAB.yml [--state DIR] [--repeat 3]

Runs what ``fab provision`` runs first for every host (Session.connect, then
Session.gather: the one probe round trip) through the same fan-out, and prints
the start-up cost of the command itself (imports), the connect and probe
times per host (median and max) and the controller's CPU seconds. Touches
nothing on the hosts. Used for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def startup_seconds() -> float:
    """Wall seconds of `fab -l`: Python, Fabric and fleet's imports, nothing else."""
    started = time.monotonic()
    subprocess.run([str(ROOT / ".venv" / "bin" / "fab"), "--search-root", str(ROOT), "-l"], capture_output=True,
                   check=True)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.timeline")
    parser.add_argument("inventory")
    parser.add_argument("--state", help="FLEET_STATE_DIR of the fleet (for its pinned host keys)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.state:
        os.environ["FLEET_STATE_DIR"] = args.state
    from fleet import inventory
    from fleet import plan as plan_mod
    from fleet.backends import seats as seats_backend
    from fleet.session import Session

    inv = inventory.load(args.inventory)
    print(f"fab start-up (fab -l): {statistics.median(startup_seconds() for _ in range(3)):.2f} s")
    for rep in range(args.repeat):
        session = Session(inv)
        wanted = {h.id: seats_backend.wanted(session, h) for h in session.hosts}
        times: dict[str, tuple[float, float]] = {}
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)

        def work(host, wanted=wanted, session=session, times=times):  # noqa: ANN001, ANN202
            t0 = time.monotonic()
            with session.connect(host) as remote:
                t1 = time.monotonic()
                session.gather(remote, plan_mod.images_of(wanted[host.id]))
                times[host.id] = (t1 - t0, time.monotonic() - t1)

        started = time.monotonic()
        outcomes = session.fan_out(work)
        wall = time.monotonic() - started
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
        failed = [o for o in outcomes if not o.ok]
        connects = [c for c, _ in times.values()]
        probes = [p for _, p in times.values()]
        print(f"run {rep + 1}: {len(times)} hosts in {wall:.2f} s (load {os.getloadavg()[0]:.1f}), controller CPU "
              f"{cpu:.2f} s; connect median {statistics.median(connects):.2f} max {max(connects):.2f} s; "
              f"probe median {statistics.median(probes):.2f} max {max(probes):.2f} s"
              + (f"; {len(failed)} failed: {failed[0].error}" if failed else ""))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
