"""The LLM endpoints (pure ASGI apps, mounted as Starlette routes): authenticate,
validate, limit, then hand the request to the failover loop, and account for it
whatever happened.

A retry or failover only happens before the first byte of the answer has gone to
the client; after that, a broken upstream stream ends the client's stream with an
error event.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from . import bodylog, failover, owners, validate
from .asgi import REQUEST_ID, Receive, Scope, Send, read_body, respond
from .auth import bearer
from .call import Call
from .errors import APIError
from .fronts.base import NOTES
from .ledger import accounting, budgetguard, meter
from .ledger.limits import Lease
from .metrics import UNKNOWN
from .state import State
from .tracing import Trace

# A request still running after this long gets a task watching for the client going
# away. Most upstream calls outlive it, but a fast one (a cache, a small model, the
# benchmark's nginx) finishes first and never pays for a task; a client that left in
# the meantime is noticed as soon as the watcher starts (receive() reports it at once).
WATCH_AFTER = 0.02


def _arm(receive: Receive, task: asyncio.Task[Any], call: Call) -> None:
    call.watcher = asyncio.get_running_loop().create_task(_watch(receive, task, call))


async def _watch(receive: Receive, task: asyncio.Task[Any], call: Call) -> None:
    """Cancel the request's task if the client goes away before the answer is done."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not call.answered:
                call.disconnected = True
                task.cancel()
            return


class LLMEndpoint:
    """``POST /v1/chat/completions``, ``/v1/completions`` or ``/v1/embeddings``."""

    def __init__(self, state: State, kind: str) -> None:
        self.state = state
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        rt = state.runtime
        call = Call(scope[REQUEST_ID], time.perf_counter(), self.kind)
        NOTES.set(call.notes)  # the request's task is its own context: nothing to reset
        telemetry = state.telemetry
        if telemetry is not None:
            call.trace = Trace(rt.config.telemetry.capture_content, self.kind)
        lease: Lease | None = None
        payload: dict[str, Any] | None = None
        try:
            raw = bearer(scope["headers"])
            key = state.keys.lookup(raw) if raw else None
            if key is None:
                raise APIError(401, "Invalid or missing API key", code="invalid_api_key")
            call.key = key
            body = await read_body(scope, receive, rt.config.server.max_body_bytes)
            call.body_bytes = len(body)
            payload = validate.parse(body, self.kind)
            model = payload["model"]
            if model not in rt.routes:
                raise APIError(
                    404, f"The model '{model}' does not exist", param="model", code="model_not_found"
                )
            call.model = model
            if not key.may_use(model):
                raise APIError(
                    403, f"This key may not use the model '{model}'", param="model", code="model_not_allowed"
                )
            call.stream = bool(payload.get("stream")) and self.kind != "embeddings"
            if self.kind == "responses":
                owners.check_background(rt, payload, model, state.limiter.redis is not None)
            lim = key.limits
            if lim.budget_usd is not None or lim.tpm is not None:
                usd, tokens = budgetguard.want(rt, model, self.kind, payload, call.body_bytes)
                lease = await state.limiter.acquire(key, call.request_id, usd, tokens)
            else:
                lease = await state.limiter.acquire(key, call.request_id)
        except APIError as exc:
            await self._refuse(call, exc, send)
            accounting.finish(
                call, rt, state.metrics, state.usage, call.model != UNKNOWN and exc.status in (429, 503)
            )
            if telemetry is not None:
                telemetry.export(call, scope, payload)
            return
        except Exception:
            # A bug: asgi.Boundary answers the 500; it still counts, like any request.
            call.status = 500
            accounting.finish(call, rt, state.metrics, state.usage, True)
            if telemetry is not None:
                telemetry.export(call, scope, payload)
            raise
        if rt.config.server.log_bodies:
            call.log_bodies = True
            bodylog.request(call.request_id, payload)

        metrics = state.metrics
        inflight = metrics.child(metrics.inflight, call.model)
        inflight.inc()
        task = asyncio.current_task()
        assert task is not None
        timer = asyncio.get_running_loop().call_later(WATCH_AFTER, _arm, receive, task, call)
        try:
            # A route with a response cache goes through it; the others pay nothing for it.
            serve = failover.serve if rt.routes[call.model].cache is None else state.cache.serve
            out = send if call.trace is None else call.trace.observe(send)
            if self.kind == "responses" and payload.get("store") is not False:
                out = owners.Recording(state.owners, rt.adapters, call, payload, out)
            await serve(call, rt, metrics, payload, scope, out)
        except APIError as exc:  # the request cannot be sent to its target (a 400 naming the part)
            await self._refuse(call, exc, send)
        except asyncio.CancelledError:
            if not call.disconnected:
                raise
            task.uncancel()
            call.status = 499
        except Exception:
            # A bug (asgi.Boundary answers the 500, or ends a started answer): recorded
            # as a 500 unless the client already had the whole answer.
            if not call.answered:
                call.status = 500
            raise
        finally:
            timer.cancel()
            if call.watcher is not None:
                call.watcher.cancel()
            inflight.dec()
            meter.complete(call)
            if 200 <= call.status < 300:
                call.notes.report(call.kind, call.provider)
            accounting.finish(call, rt, metrics, state.usage, True)
            if lease is not None:
                state.limiter.settle(lease, call.usage.prompt + call.usage.completion, call.cost)
            if telemetry is not None:
                telemetry.export(call, scope, payload)

    @staticmethod
    async def _refuse(call: Call, exc: APIError, send: Send) -> None:
        call.status = exc.status
        if exc.status != 499:
            await respond(send, exc.status, exc.body(), exc.headers()[1:] + call.meta())
