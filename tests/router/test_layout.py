"""The router package's shape: no import cycle (type-checking imports included), no
module over 400 lines, and no direct aiohttp use (httpx's client API only)."""

from __future__ import annotations

import ast
from pathlib import Path

import xrouter_router

PACKAGE = Path(xrouter_router.__file__).resolve().parent  # the code under test, wherever it is
NAME = "xrouter_router"


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every package module ``module`` imports, anywhere in the file (so imports under
    ``if TYPE_CHECKING:`` and inside functions count too)."""
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target in known:
                found.add(target)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    found.add(sub)
    found.discard(module)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_even_for_type_checking() -> None:
    modules = _modules()
    graph = {m: _imports(m, p, set(modules)) for m, p in modules.items()}
    assert graph[f"{NAME}.app"], "the parser found no imports at all"
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_over_400_lines() -> None:
    long = {m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > 400}
    assert not long


def test_upstream_calls_go_through_httpx_only() -> None:
    # clients.py, the one module that names the transport, also configures the aiohttp
    # session under it (its cookie jar); nothing calls aiohttp directly.
    direct = [
        m
        for m, p in _modules().items()
        if m != "xrouter_router.clients"
        for node in ast.walk(ast.parse(p.read_text()))
        if (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "aiohttp" for a in node.names))
        or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "aiohttp")
    ]
    assert not direct


def test_uvicorn_serves_a_starlette_app() -> None:
    from starlette.applications import Starlette
    from xrouter_router.app import create_app
    from xrouter_router.config import RouterConfig

    config = RouterConfig.model_validate(
        {
            "providers": [{"name": "m", "type": "mock"}],
            "models": [{"name": "echo", "targets": [{"provider": "m", "model": "e"}]}],
        }
    )
    app = create_app(config)
    assert isinstance(app, Starlette)
    paths = {getattr(r, "path", None) for r in app.routes}
    assert {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/health",
        "/ready",
        "/metrics",
    } <= paths


def test_the_ledger_is_one_folder_that_the_request_path_calls_into() -> None:
    modules = _modules()
    ledger = {m for m in modules if m.startswith(f"{NAME}.ledger.")}
    names = {m.rsplit(".", 1)[1] for m in ledger}
    assert {"usage", "usagerow", "spill", "spillstream", "db", "budgets", "budgetguard", "limits"} <= names
    assert not {f"{NAME}.{n}" for n in names} & set(modules), "a ledger module is also at the top level"
    # The boundary: the ledger never reaches into the request path (it is called at
    # admission and at the end of each request, not the other way round).
    request_path = {
        f"{NAME}.{m}" for m in ("proxy", "failover", "upstream", "streaming", "fronts.endpoints", "cache")
    }
    reach = {m: _imports(m, modules[m], set(modules)) & request_path for m in ledger}
    assert not {m: r for m, r in reach.items() if r}
