"""config/argocd/health.lua, run the way Argo CD runs it: `obj` is a global and the chunk
returns a table with `status` and `message`. Shared by the packaging and end-to-end tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa

HEALTH_LUA = Path(__file__).resolve().parents[2] / "config" / "argocd" / "health.lua"


def health(obj: dict[str, Any]) -> dict[str, str]:
    """The health check's verdict on one XRouter object, e.g. {"status": "Healthy", "message": ...}."""
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)

    def to_lua(value: Any) -> Any:
        if isinstance(value, dict):
            return runtime.table_from({k: to_lua(v) for k, v in value.items()})
        if isinstance(value, list):
            return runtime.table_from([to_lua(v) for v in value])
        return value

    runtime.globals().obj = to_lua(obj)
    result = runtime.execute(HEALTH_LUA.read_text())
    return {str(k): str(v) for k, v in result.items()}
