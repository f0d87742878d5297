"""A small run of benchmark scenario 1 (converged re-run) on two real test hosts.

It checks what the benchmark counts, not how fast anything is: every tool's
re-run exits 0 and changes nothing, and fleet's re-run costs one SSH connection
and at most two round trips per host, by its own count and by the hosts' sshd
journals alike. Ansible and pyinfra take part when benchmarks/.venv has them
(`python -m benchmarks setup`); otherwise fleet runs alone.
"""
from __future__ import annotations

import pytest

from benchmarks.run import Bench, Config
from benchmarks.tools import PEERS

pytestmark = [pytest.mark.hosts, pytest.mark.bench]  # run with: pytest -m bench


def test_converged_rerun_counts(built_images, tmp_path):
    tools = ["fleet"] + (["ansible", "pyinfra"] if (PEERS / "ansible-playbook").exists() else [])
    cfg = Config(["converged"], {"converged": [2]}, repeat=2, tools=tools, out=tmp_path / "results.json",
                 work=tmp_path / "work", max_load=1000, load_wait=0)
    bench = Bench(cfg)
    bench.run()  # removes its hosts at the end, also on failure
    rows = {r["tool"]: r for r in bench.results["rows"]}
    assert sorted(rows) == sorted(tools)
    for tool, row in rows.items():
        assert len(row["runs"]) == 2
        for run in row["runs"]:
            assert run["rc"] == 0, f"{tool}: see {run['log']}"
            assert run["converged"], f"{tool} changed something on a converged fleet: see {run['log']}"
            assert run["wall"] > 0
    for run in rows["fleet"]["runs"]:
        assert run["counts"]["connections"] == [1, 1]
        assert all(1 <= s <= 2 for s in run["counts"]["sessions"]), run["counts"]
        assert run["counts"]["host_to_host"] == [0, 0]
        assert all(h["connections"] == 1 and h["round_trips"] <= 2 for h in run["fleet"]["hosts"].values())
        assert run["fleet"]["pushed_bytes"] == 0
