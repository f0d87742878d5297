"""The shape of the code: imports point down, and no module of fleet/ imports itself back through others.

A cycle means a seam is missing (docs/ARCHITECTURE.md). Read from the source
with ast, every `from X import Y` of fleet/ (TYPE_CHECKING imports included:
they are the same coupling).
"""
from __future__ import annotations

import ast
from pathlib import Path

FLEET = Path(__file__).resolve().parents[2] / "fleet"


def graph() -> dict[str, set[str]]:
    mods = {".".join(p.relative_to(FLEET.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in FLEET.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module in mods:
                    edges[m].add(node.module)
                edges[m].update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in mods)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[str]:
    found, done = [], set()

    def visit(m: str, stack: list[str]) -> None:
        if m in stack:
            found.append(" -> ".join([*stack[stack.index(m):], m]))
            return
        if m in done:
            return
        done.add(m)
        for n in sorted(edges[m]):
            visit(n, [*stack, m])

    for m in sorted(edges):
        visit(m, [])
    return found


def test_no_import_cycles_in_fleet():
    assert cycles(graph()) == []


def test_the_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a -> b -> c -> a"]


def test_imports_point_down():
    edges = graph()
    workflows = {"fleet.converge", "fleet.classroom", "fleet.placement", "fleet.servers.lifecycle"}
    rendering = {"fleet.report", "fleet.handout", "fleet.live", "fleet.starter"}
    edge = {"fleet.ssh", "fleet.state", "fleet.runner", "fleet.errors", "fleet.steps", "fleet.events"}
    for m in rendering | edge:  # rendering takes plain data; the edges know nothing above them
        assert not edges[m] & (workflows | {"fleet.session"} | {b for b in edges if b.startswith("fleet.backends")}), m
    for m in edges:  # nothing in the library reaches up into the Fabric tasks
        assert not any(n.startswith("tasks") for n in edges[m]), m
