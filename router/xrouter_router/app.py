"""The Starlette application: the routing table, the lifespan (start-up, background
tasks, drain), the exception handlers, and the top-level boundary. The endpoints
get the shared ``State`` explicitly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import quota
from .admin import Admin
from .asgi import Boundary
from .config import RouterConfig, load_config
from .endpoints import Ops
from .errors import APIError, error_for
from .fronts.endpoints import AnthropicErrors, CountTokens, ResponseRetrieve
from .ledger.usageapi import UsageAPI
from .proxy import LLMEndpoint
from .reload import Reloader
from .state import State

log = logging.getLogger("xrouter.app")

KEY_REFRESH_SECONDS = 5.0
# The cyclic GC's youngest generation is collected after this many more container
# objects were allocated than freed (Python's default: 700). The requests in flight
# hold a few thousand young objects between them (dicts, headers, frames), so at 700
# each collection walked all of them, several times a request, while nearly all of them
# are freed by reference counting anyway (the router makes almost no cyclic garbage;
# see docs/router-performance.md): about 5 % of the CPU at 32 connections. The older
# generations keep their defaults, so a cycle (an exception's traceback) is still
# collected, only later.
GC_THRESHOLD = 10_000


def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return Response(exc.body(), exc.status, headers=dict((k.decode(), v.decode()) for k, v in exc.headers()))


def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (no route, wrong method), in the front door's error shape."""
    assert isinstance(exc, HTTPException)
    path, method = request.url.path, request.method
    if exc.status_code == 405:
        message = f"Method {method} not allowed on {path}"
    elif exc.status_code == 404:
        message = f"Unknown path {path}"
    else:
        message = str(exc.detail)
    headers = dict(exc.headers or {})
    headers["content-type"] = "application/json"
    return Response(error_for(path, exc.status_code, message), exc.status_code, headers=headers)


async def _key_loop(state: State) -> None:
    while True:
        await asyncio.sleep(KEY_REFRESH_SECONDS)
        await state.refresh_db_keys()


async def startup(state: State, config_path: str | None, tasks: list[asyncio.Task[None]]) -> None:
    await state.usage.start()
    await state.limiter.check()
    if state.limiter.budget is not None:
        await state.limiter.budget.reconcile()  # Redis's budget accounts from PostgreSQL
    await state.refresh_db_keys()
    loop = asyncio.get_running_loop()
    tasks.append(loop.create_task(_key_loop(state)))
    quota_sync = quota.sync_loop(lambda: state.limiter.redis, state.targets.states, state.namespace)
    tasks.append(loop.create_task(quota_sync))
    if config_path:
        reloader = Reloader(config_path, state.apply, state.metrics)
        tasks.append(loop.create_task(reloader.run()))
    state.ready = True
    # What exists now (modules, config models, compiled routes) lives as long as the
    # process: keep it out of the cyclic GC's full collections, which would otherwise
    # walk all of it again and again under load.
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    log.info("router started (pid %d)", os.getpid())


async def shutdown(state: State, tasks: list[asyncio.Task[None]]) -> None:
    state.ready = False
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await state.clients.aclose()
    await state.usage.aclose()
    await state.limiter.aclose()
    if state.telemetry is not None:
        await asyncio.to_thread(state.telemetry.shutdown)  # exports the spans still buffered
    log.info("router stopped; usage buffer flushed (%d rows left in spill files)", state.usage.spill_rows)


def build_app(state: State, config_path: str | None = None) -> Starlette:
    """The router as a Starlette app. ``config_path`` enables hot reload of that file."""
    ops, admin, usage = Ops(state), Admin(state), UsageAPI(state)
    retrieve = ResponseRetrieve(state)
    routes = [
        # The LLM endpoints first: they are nearly all the traffic.
        Route("/v1/chat/completions", LLMEndpoint(state, "chat"), methods=["POST"]),
        Route("/v1/completions", LLMEndpoint(state, "completions"), methods=["POST"]),
        Route("/v1/embeddings", LLMEndpoint(state, "embeddings"), methods=["POST"]),
        Route("/v1/responses", LLMEndpoint(state, "responses"), methods=["POST"]),
        Route("/v1/responses/{response_id}", retrieve, methods=["GET", "DELETE"]),
        Route("/v1/responses/{response_id}/{action}", retrieve, methods=["GET", "POST"]),
        Route("/v1/messages", AnthropicErrors(LLMEndpoint(state, "messages")), methods=["POST"]),
        Route("/v1/messages/count_tokens", AnthropicErrors(CountTokens(state)), methods=["POST"]),
        Route("/v1/models", ops.models, methods=["GET"]),
        Route("/v1/usage", usage.get, methods=["GET"]),
        Route("/health", ops.health, methods=["GET"]),
        Route("/ready", ops.ready, methods=["GET"]),
        Route("/metrics", ops.metrics, methods=["GET"]),
        Route("/admin/keys", admin.keys, methods=["GET", "POST"]),
        Route("/admin/keys/{name}", admin.key, methods=["PATCH", "DELETE"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        try:
            await startup(state, config_path, tasks)
        except Exception:
            log.exception("start-up failed")
            raise
        try:
            yield
        finally:
            await shutdown(state, tasks)

    app = Starlette(
        routes=routes,
        middleware=[Middleware(Boundary)],
        exception_handlers={APIError: _api_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.xrouter = state
    return app


def create_app(config: RouterConfig | None = None, config_path: str | None = None) -> Starlette:
    """The uvicorn factory: with no arguments, reads the config named by ``$XROUTER_CONFIG``."""
    if config is None:
        config_path = os.environ["XROUTER_CONFIG"]
        config = load_config(config_path)
    return build_app(State(config), config_path)
