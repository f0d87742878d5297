"""What the teacher reads at the end of a command: tables and plan listings.

Pure: from reports to text or JSON-ready data. No secret is ever in a
report: seat URLs here carry no token (the handout has them).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fleet.inventory import Host
from fleet.runner import Outcome
from fleet.steps import Step


@dataclass
class SeatReport:
    """One row of the seat table: a container wanted on a host, and how it is doing."""

    container: str
    service: str
    number: int
    url: str
    state: str  # running | exited | ... | missing
    restarts: int = 0
    health: str = ""  # status only: does the seat answer at its URL
    cpu: str = ""  # status only: CPU % (100% = one core)
    memory: str = ""  # status only: used / limit


@dataclass
class HostReport:
    """What a command did on, or found about, one host."""

    host: Host
    os: str = ""
    docker: str = ""
    steps: list[Step] = field(default_factory=list)
    seats: list[SeatReport] = field(default_factory=list)
    seconds: float = 0.0
    round_trips: int = 0
    removed: list[str] = field(default_factory=list)
    usage: str = ""  # status only: load, memory and disk of the host
    tls: str = ""  # plan: which certificate the host's proxy gets, from where (fleet.proxy.Certificate.describe)
    certificate: str = ""  # status: the certificate the proxy serves, its issuer and end
    notes: list[str] = field(default_factory=list)  # one line each the teacher must read (a TLS fallback, a warning)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Plain aligned columns: readable in any terminal, in a log and in a test."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def seats_table(outcomes: list[Outcome[Host, HostReport]]) -> str:
    rows: list[list[object]] = []
    for o in outcomes:
        if not o.ok:
            rows.append([o.item.id, "-", "-", f"FAILED: {o.error}"])
            continue
        for s in o.value.seats:
            rows.append([o.item.id, s.container, s.url or "-", s.state + (f" ({s.restarts} restarts)" if s.restarts else "")])
        if not o.value.seats:
            rows.append([o.item.id, "-", "-", "no seats"])
    text = table(["HOST", "SEAT", "URL", "STATE"], rows)
    said = notes(outcomes)
    return text + ("\n\n" + said if said else "")


def status_table(outcomes: list[Outcome[Host, HostReport]]) -> str:
    """The class at a glance: a row per seat, then a line per host (the mpstat view)."""
    rows: list[list[object]] = []
    hosts = []
    for o in outcomes:
        if not o.ok:
            rows.append([o.item.id, "-", f"FAILED: {o.error}", "", "", "", ""])
            continue
        for s in o.value.seats:
            state = s.state + (f" ({s.restarts} restarts)" if s.restarts else "")
            rows.append([o.item.id, s.container, state, s.health or "-", s.cpu or "-", s.memory or "-", s.url or "-"])
        hosts.append(f"{o.item.id}: {o.value.usage}")
        if o.value.certificate:
            hosts.append(f"{o.item.id}: {o.value.certificate}")
        hosts += [f"{o.item.id}: {note}" for note in o.value.notes]
    return table(["HOST", "SEAT", "STATE", "HEALTH", "CPU", "MEMORY", "URL"], rows) + "\n\n" + "\n".join(hosts)


def notes(outcomes: list[Outcome[Host, HostReport]]) -> str:
    """The lines a run has for the teacher besides the table (a TLS fallback, with its reason), one per host."""
    return "\n".join(f"{o.item.id}: {note}" for o in outcomes if o.ok for note in o.value.notes)


def summary(outcomes: list[Outcome[Host, HostReport]], seconds: float, verb: str = "converged") -> str:
    failed = [o for o in outcomes if not o.ok]
    changed = sum(1 for o in outcomes if o.ok and o.value.steps)
    text = f"{len(outcomes) - len(failed)} of {len(outcomes)} hosts {verb}"
    if verb == "converged":
        text += f" ({changed} changed)"
    return text + (f", {len(failed)} failed" if failed else "") + f" in {seconds:.1f} s"


def defaults_text(file: str, defaults: Sequence[object]) -> str:
    """The values an inventory left out, as fleet fills them in: one ``field = value`` line each."""
    if not defaults:
        return f"from defaults: nothing; {file} sets every value"
    return f"from defaults (not written in {file}):\n" + "\n".join(f"  {d}" for d in defaults)


def plan_data(outcomes: list[Outcome[Host, HostReport]]) -> list[dict]:
    """The dry run as data: facts seen and the exact commands, secrets left out."""
    out = []
    for o in outcomes:
        entry: dict = {"host": o.item.id, "user": o.item.user}
        if o.ok:
            entry.update(os=o.value.os, docker=o.value.docker or None,
                         steps=[s.describe() for s in o.value.steps])
            if o.value.tls:
                entry["https"] = o.value.tls
        else:
            entry["error"] = o.error
        out.append(entry)
    return out


def plan_text(outcomes: list[Outcome[Host, HostReport]]) -> str:
    from shlex import join

    lines = []
    for entry in plan_data(outcomes):
        lines.append(f"{entry['host']} ({entry['user']}): " + (
            f"FAILED: {entry['error']}" if "error" in entry
            else f"{entry['os']}, {entry['docker']}: "
                 + (f"{len(entry['steps'])} steps" if entry["steps"] else "nothing to do")))
        if entry.get("https"):
            lines.append(f"  HTTPS: {entry['https']}")
        for step in entry.get("steps", []):
            lines.append(f"  - {step['do']}")
            if "run" in step:
                argv = step["run"]
                if argv[:2] == ["sh", "-c"] and "\n" in argv[2]:  # a fixed script: its text is in --json
                    n = argv[2].strip().count("\n") + 1
                    argv = ["sh", "-c", f"<{n}-line script, see --json>", *argv[3:]]
                lines.append(f"      $ {join(argv)}")
            elif "upload" in step:
                lines.append(f"      > {step['upload']} (mode {step['mode']}, {step['content']})")
            elif "send" in step:
                names = step["files"][:5] + (["..."] if len(step["files"]) > 5 else [])
                lines.append(f"      > {step['send']}: {len(step['files'])} file(s), {step['bytes']} bytes"
                             + (f" ({', '.join(names)})" if names else "")
                             + (f"; remove {', '.join(step['remove'][:5])}" if step["remove"] else ""))
    return "\n".join(lines)
