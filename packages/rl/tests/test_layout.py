"""The module layout: certkit.rl's internal imports (top-level and inside functions) form no
cycle, and only the entry points (cli, report) import the trainer."""

from __future__ import annotations

import ast
from pathlib import Path

import certkit.rl

PKG = Path(certkit.rl.__file__).parent


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for f in sorted(PKG.glob("*.py")):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            deps |= {n.split(".")[2] for n in names
                     if n.startswith("certkit.rl.") and (PKG / f"{n.split('.')[2]}.py").exists()}
        graph[f.stem] = deps - {f.stem}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return [*path[path.index(d):], d]
            if d not in state and (c := visit(d)):
                return c
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_rl_modules_import_no_cycle_and_nothing_below_imports_training() -> None:
    graph = _imports()
    assert {"policies", "rollout", "train", "checkpoints", "loading"} <= set(graph)
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"
    assert {m for m, deps in graph.items() if "train" in deps} <= {"cli", "report"}
    assert {"rollout", "policies"} <= graph["train"]  # training uses rollouts and policies
    assert "rollout" not in graph["policies"] and graph["policies"] == set()


def test_cycle_detector_sees_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
