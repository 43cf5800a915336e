"""The operational endpoints, on Starlette's Request/Response: ``/health``,
``/ready``, ``/metrics`` and ``GET /v1/models``."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .auth import bearer
from .errors import APIError
from .metrics import CONTENT_TYPE_LATEST
from .state import State


def json_response(status: int, data: Any) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


class Ops:
    def __init__(self, state: State) -> None:
        self.state = state

    async def health(self, request: Request) -> Response:
        return json_response(200, {"status": "ok"})

    async def ready(self, request: Request) -> Response:
        state = self.state
        limiter, usage = state.limiter, state.usage
        if limiter.redis is None:
            redis = "disabled: limits are per process"
        elif limiter.redis_up:
            redis = "up"
        elif limiter.fail_mode == "open":
            redis = "down: limits are per process"
        else:
            redis = "down: refusing limited requests"
        if not usage.enabled:
            database = "disabled: usage is not persisted"
        else:
            database = "up" if usage.db_up else "down: usage is buffered and spilled"
        degraded = (limiter.redis is not None and not limiter.redis_up) or (usage.enabled and not usage.db_up)
        body: dict[str, Any] = {
            "status": "starting" if not state.ready else ("degraded" if degraded else "ready"),
            "config": "loaded",
            "redis": redis,
            "database": database,
            "usageBufferRows": len(usage.queue) + usage.spill_rows,
        }
        return json_response(200 if state.ready else 503, body)

    async def metrics(self, request: Request) -> Response:
        return Response(self.state.metrics.render(), 200, headers={"content-type": CONTENT_TYPE_LATEST})

    async def models(self, request: Request) -> Response:
        state = self.state
        raw = bearer(request.scope["headers"])
        key = state.keys.lookup(raw) if raw else None
        if key is None:
            raise APIError(401, "Invalid or missing API key", code="invalid_api_key")
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "xrouter"}
            for name in state.runtime.routes
            if key.may_use(name)
        ]
        return json_response(200, {"object": "list", "data": data})
