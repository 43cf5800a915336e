"""hack/xrouter_dev has no import cycle (imports under TYPE_CHECKING or inside a function count
too: a cycle hidden there still ties the modules together)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest
import xrouter_dev

PACKAGE = Path(xrouter_dev.__file__).resolve().parent
NAME = "xrouter_dev"


def import_graph(package: Path, name: str) -> dict[str, set[str]]:
    """module -> the package's modules it imports anywhere in its file (absolute imports only: the
    package uses no relative ones, and a relative one fails the test so that it is not missed)."""
    modules = {f"{name}.{p.stem}" if p.stem != "__init__" else name: p for p in package.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not node.level, f"{module}: relative import"
                base = node.module or ""
                found.update(t for t in (base, *(f"{base}.{a.name}" for a in node.names)) if t in modules)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in modules)
        graph[module] = found - {module, name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        return list(e.args[1])
    return None


def test_no_import_cycle_in_hack() -> None:
    graph = import_graph(PACKAGE, NAME)
    assert graph[f"{NAME}.cluster"], "the parser found no imports at all"
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("graph", "cyclic"),
    [({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True), ({"a": {"b"}, "b": set()}, False)],
)
def test_cycle_finder(graph: dict[str, set[str]], cyclic: bool) -> None:
    assert (find_cycle(graph) is not None) == cyclic
