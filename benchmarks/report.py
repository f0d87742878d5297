"""Results JSON → the table of benchmarks/RESULTS.md (medians, min–max, ratios, counts per host)."""
from __future__ import annotations

import statistics

TITLES = {
    "converged": "1. converged re-run",
    "seats": "2. fresh seats (Docker and image present)",
    "fresh": "3. fresh hosts (Docker from Debian's packages)",
    "push": "4. image distribution (481 MB, push)",
    "classroom": "5. time to classroom (fresh hosts, 481 MB image pushed, 3 Jupyter seats each)",
}
PEERS = ("ansible", "ansible-warm", "pyinfra", "naive")


def _ok(row: dict) -> list[dict]:
    return [r for r in row["runs"] if r["rc"] == 0]


def _walls(row: dict) -> list[float]:
    return [r["wall"] for r in _ok(row)]


def median(row: dict) -> float | None:
    walls = _walls(row)
    return statistics.median(walls) if walls else None


def per_host(row: dict, key: str) -> str:
    """Mean per host per run of an sshd count, e.g. connections: '1' or '1.5'."""
    values = [v for r in _ok(row) for v in r["counts"][key]]
    if not values:
        return "-"
    m = statistics.mean(values)
    return f"{m:.0f}" if abs(m - round(m)) < 0.05 else f"{m:.1f}"


def fleet_round_trips(row: dict) -> str:
    values = [h["round_trips"] for r in _ok(row) if "fleet" in r for h in r["fleet"]["hosts"].values()]
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def cpu(row: dict) -> str:
    """Median CPU seconds of a run, this computer's tool plus everything on the hosts (load-independent)."""
    runs = [r for r in _ok(row) if "hosts_cpu" in r]
    if not runs:
        return "-"
    return f"{statistics.median(r['cpu'] + r['hosts_cpu'] for r in runs):.1f}"


def cell(row: dict | None) -> str:
    if row is None:
        return "-"
    walls = _walls(row)
    failed = len(row["runs"]) - len(walls)
    if not walls:
        return f"failed ({failed})"
    text = f"{statistics.median(walls):.2f} ({min(walls):.2f}–{max(walls):.2f})"
    return text + (f" [{failed} failed]" if failed else "")


def table(results: dict) -> str:
    rows = results["rows"]
    by = {(r["scenario"], r.get("shape", ""), r["n"], r["tool"]): r for r in rows}
    peers = [p for p in PEERS if any(r["tool"] == p for r in rows)]
    head = ["scenario", "N", "fleet s", *[f"{p} s" for p in peers], *[f"fleet/{p}" for p in peers],
            "conn/host f/" + "/".join(p[0] + ("w" if p.endswith("warm") else "") for p in peers),
            "sessions/host f/" + "/".join(p[0] + ("w" if p.endswith("warm") else "") for p in peers),
            "fleet round trips/host", "CPU s ctl+hosts f/" + "/".join(p[0] + ("w" if p.endswith("warm") else "")
                                                                     for p in peers),
            "fleet RSS MB", "load"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    keys = sorted({(r["scenario"], r.get("shape", ""), r["n"]) for r in rows},
                  key=lambda k: (list(TITLES).index(k[0]), k[1], k[2]))
    for scenario, shaped, n in keys:
        f = by.get((scenario, shaped, n, "fleet"))
        cells = [TITLES[scenario] + (f", uplink {shaped}" if shaped else ""), str(n), cell(f)]
        cells += [cell(by.get((scenario, shaped, n, p))) for p in peers]
        for p in peers:
            pr = by.get((scenario, shaped, n, p))
            fm, pm = (median(f) if f else None), (median(pr) if pr else None)
            cells.append(f"{fm / pm:.2f}" if fm and pm else "-")
        every = [f] + [by.get((scenario, shaped, n, p)) for p in peers]
        cells.append(" / ".join(per_host(r, "connections") if r else "-" for r in every))
        cells.append(" / ".join(per_host(r, "sessions") if r else "-" for r in every))
        cells.append(fleet_round_trips(f) if f else "-")
        cells.append(" / ".join(cpu(r) if r else "-" for r in every))
        rss = [r["rss_kb"] for r in _ok(f)] if f else []
        cells.append(f"{max(rss) / 1024:.0f}" if rss else "-")
        loads = [r.get("load", 0) for row in every if row for r in row["runs"]]
        cells.append(f"{min(loads):.1f}–{max(loads):.1f}" if loads else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def push_table(results: dict) -> str:
    """What left this computer in the push scenario, by fleet's own count, and how the hosts got the image."""
    out = ["| N | fleet: bytes sent from this computer (median) | image archive | relayed host to host | "
           "fallbacks | host-to-host logins/host |", "|---|---|---|---|---|---|"]
    size = results.get("archives", {}).get("fleet-jupyter:test", {}).get("bytes")
    for row in results["rows"]:
        if row["scenario"] not in ("push", "classroom") or row["tool"] != "fleet":
            continue
        runs = [r for r in _ok(row) if "fleet" in r]
        if not runs:
            continue
        sent = statistics.median(r["fleet"]["pushed_bytes"] for r in runs)
        relayed = statistics.median(len(r["fleet"].get("relayed", [])) for r in runs)
        fallbacks = sum(len(r["fleet"].get("fallbacks", [])) for r in runs)
        out.append(f"| {row['n']} | {sent / 1e6:.0f} MB | {size / 1e6:.0f} MB | {relayed:.0f} | {fallbacks} | "
                   f"{per_host(row, 'host_to_host')} |" if size else f"| {row['n']} | {sent / 1e6:.0f} MB | ? | "
                   f"{relayed:.0f} | {fallbacks} | {per_host(row, 'host_to_host')} |")
    return "\n".join(out)


def classroom_table(results: dict) -> str:
    """Time to classroom: from each tool's start until every seat answers with its token (the peers return
    earlier, when `docker run` does; fleet returns when its seats answer)."""
    out = ["| uplink | N | tool | returned s | every seat answering s | fleet's answering / this tool's |",
           "|---|---|---|---|---|---|"]
    rows = [r for r in results["rows"] if r["scenario"] == "classroom"]
    answer = {}
    for row in rows:
        times = [r["answering"] for r in _ok(row) if r.get("answering") is not None]
        answer[(row.get("shape", ""), row["n"], row["tool"])] = times
    for row in sorted(rows, key=lambda r: (r.get("shape", ""), r["n"], r["tool"] != "fleet", r["tool"])):
        key = (row.get("shape", ""), row["n"], row["tool"])
        times, mine = answer[key], answer.get((key[0], key[1], "fleet"), [])
        text = (f"{statistics.median(times):.1f} ({min(times):.1f}–{max(times):.1f})" if times else "-")
        ratio = f"{statistics.median(mine) / statistics.median(times):.2f}" if times and mine and row["tool"] != "fleet" else "-"
        out.append(f"| {key[0] or 'unshaped'} | {key[1]} | {row['tool']} | {cell(row)} | {text} | {ratio} |")
    return "\n".join(out)


def machine(results: dict) -> str:
    m = results["machine"]
    return (f"{m['date']}: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, "
            f"Python {m['python']}, Docker {m['docker']} (controller); {m.get('ansible-core', '?')}, "
            f"community.docker {m.get('community.docker', '?')}, {m.get('pyinfra', '?')}; "
            f"{results['repeat']} runs per cell")


def render(results: dict) -> str:
    parts = [machine(results), "", table(results)]
    if any(r["scenario"] in ("push", "classroom") for r in results["rows"]):
        parts += ["", push_table(results)]
    if any(r["scenario"] == "classroom" for r in results["rows"]):
        parts += ["", classroom_table(results)]
    return "\n".join(parts)
