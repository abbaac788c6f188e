"""The import graph of flatkd points down only: CLI -> report -> run layer -> method packages ->
foundation (``../shared/DESIGN.md`` §2).

Read from the source with :mod:`ast` (every ``import``/``from`` statement, at module level or
inside functions), so nothing is imported and nothing can hide behind a lazy import.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import flatkd

ROOT = Path(flatkd.__file__).parent
METHOD_PACKAGES = ("codec", "data", "models", "train", "landscape", "distill")
FOUNDATION = ("config", "errors", "fileio", "modalities", "naming", "progress", "stats", "workers")
UPPER = ("runs", "report", "plots", "cli")


def _imports() -> dict[str, set[str]]:
    """Module (dotted, without ``flatkd.``) -> flatkd modules it imports."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = ".".join(parts[:-1])
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    targets = [".".join(["flatkd", *filter(None, base), *([node.module] if node.module else [])])]
                else:
                    targets = [node.module or ""]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[module] |= {t.removeprefix("flatkd").lstrip(".") for t in targets if t.split(".")[0] == "flatkd"}
    return graph


def _top(module: str) -> str:
    return module.split(".")[0] if module else "flatkd"


def _package_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, targets in _imports().items():
        for target in targets:
            if _top(module) != _top(target):
                edges[_top(module)].add(_top(target))
    return edges


def test_method_packages_import_neither_the_run_layer_nor_plots_nor_the_cli() -> None:
    edges = _package_edges()
    upward = {(p, q) for p in (*METHOD_PACKAGES, *FOUNDATION) for q in edges[p] if q in UPPER or q == "flatkd"}
    assert not upward, upward


def test_foundation_imports_only_foundation() -> None:
    edges = _package_edges()
    assert {(p, q) for p in FOUNDATION for q in edges[p] if q not in FOUNDATION} == set()


def test_plots_take_plain_data() -> None:
    edges = _package_edges()
    assert edges["plots"] <= {"fileio", "modalities"}, edges["plots"]


def test_run_layer_is_below_report_and_cli() -> None:
    edges = _package_edges()
    assert not edges["runs"] & {"report", "cli"}, edges["runs"]
    assert "cli" not in edges["report"]


def test_no_import_cycle_between_packages() -> None:
    edges = _package_edges()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(q == goal or (q not in seen and reaches(q, goal, seen | {q})) for q in edges[start])

    cycles = sorted(p for p in list(edges) if reaches(p, p, {p}))
    assert not cycles, cycles


def test_the_walk_sees_real_edges() -> None:
    """The checks above are about a real graph: known edges are found."""
    graph = _imports()
    assert "train.loop" in graph["runs.training"] and "runs.rundir" in graph["cli.train"]
    assert {"runs", "train", "landscape"} <= _package_edges()["cli"]
