"""The operator package's shape: no module over 400 lines and no import cycle (imports under
TYPE_CHECKING or inside a function count too), as for the router and hack/."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import xrouter_operator

PACKAGE = Path(xrouter_operator.__file__).resolve().parent
NAME = "xrouter_operator"


def modules() -> dict[str, Path]:
    return {NAME if p.stem == "__init__" else f"{NAME}.{p.stem}": p for p in PACKAGE.glob("*.py")}


def imports(path: Path, known: set[str]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            # The package is flat: `from .x import y` is xrouter_operator.x (or .y, a module).
            base = f"{NAME}.{node.module}" if node.level and node.module else (node.module or NAME)
            found.update(t for t in (base, *(f"{base}.{a.name}" for a in node.names)) if t in known)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
    return found


def test_no_module_over_400_lines() -> None:
    long = {m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > 400}
    assert not long


def test_no_import_cycle() -> None:
    mods = modules()
    graph = {m: imports(p, set(mods)) - {m} for m, p in mods.items()}
    assert graph[f"{NAME}.reconcile"], "the parser found no imports at all"
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle
