"""The ASGI application: a flat dispatch table in front of the handlers, lifespan
start-up/shutdown, and the shared state (runtime, limiter, usage, metrics)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from typing import Any

import orjson
from redis.asyncio import Redis

from . import admin, db
from .asgi import Message, Receive, Scope, Send, respond, respond_json
from .auth import KeyInfo, KeyStore, bearer
from .config import Limits, RouterConfig, load_config
from .errors import APIError
from .limits import Limiter
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .proxy import Proxy
from .reload import Reloader
from .runtime import Runtime, TargetRegistry, build
from .secrets import override
from .usage import UsageRecorder

log = logging.getLogger("xrouter.app")

KEY_REFRESH_SECONDS = 5.0
_LLM = {"/v1/chat/completions": "chat", "/v1/completions": "completions", "/v1/embeddings": "embeddings"}


class App:
    """The router. ``config_path`` enables hot reload of that file."""

    def __init__(self, config: RouterConfig, config_path: str | None = None) -> None:
        self.metrics = Metrics()
        self.targets = TargetRegistry(self.metrics)
        self.runtime: Runtime = build(config, self.targets)
        self.keys = KeyStore(self.runtime.keys)
        self.config_path = config_path
        redis_url = override("REDIS_URL", config.redis.url, "redis.url")
        dsn = override("DATABASE_URL", config.database.url, "database.url")
        redis = (
            Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5) if redis_url else None
        )
        total = max(p.timeouts.total for p in config.providers)
        d = config.database
        self.usage = UsageRecorder(dsn, self.metrics, d.spill_dir, d.batch_size, d.flush_interval_seconds)
        self.limiter = Limiter(redis, config.redis.fail_mode, self.metrics, total, self.usage.spent)
        self._budgets()
        self.proxy = Proxy(self)
        self.ready = False
        self._tasks: list[asyncio.Task[None]] = []

    def apply(self, config: RouterConfig) -> None:
        """Swap in a new config (raises, leaving the old one, if it cannot be built)."""
        runtime = build(config, self.targets)
        self.runtime = runtime
        self.keys.config_keys = runtime.keys
        self.limiter.fail_mode = config.redis.fail_mode
        self._budgets()

    def _budgets(self) -> None:
        keys = [*self.keys.config_keys.values(), *self.keys.db_keys.values()]
        self.usage.budget_keys = {k.name for k in keys if k.limits.budget_usd is not None}

    async def refresh_db_keys(self) -> None:
        if self.usage.pool is None:
            return
        try:
            rows = await db.active_keys(self.usage.pool)
        except Exception as exc:  # the database may be down; keep the keys we have
            log.warning("could not refresh keys from the database: %s", type(exc).__name__)
            return
        fresh: dict[str, KeyInfo] = {}
        for name, sha, limits in rows:
            try:
                fresh[sha] = KeyInfo(name, sha, Limits.model_validate(limits), "db")
            except ValueError:
                log.warning("database key %s has invalid limits; skipped", name)
        self.keys.db_keys = fresh
        self._budgets()

    async def _key_loop(self) -> None:
        while True:
            await asyncio.sleep(KEY_REFRESH_SECONDS)
            await self.refresh_db_keys()

    async def startup(self) -> None:
        await self.usage.start()
        await self.limiter.check()
        await self.refresh_db_keys()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._key_loop()))
        if self.config_path:
            reloader = Reloader(self.config_path, self.apply, self.metrics)
            self._tasks.append(loop.create_task(reloader.run()))
        self.ready = True
        log.info("router started (pid %d)", os.getpid())

    async def shutdown(self) -> None:
        self.ready = False
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.proxy.aclose()
        await self.usage.aclose()
        await self.limiter.aclose()
        log.info("router stopped; usage buffer flushed (%d rows left in spill files)", self.usage.spill_rows)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            llm = _LLM.get(path)
            if llm is not None and scope["method"] == "POST":
                await self.proxy.handle(llm, scope, receive, send)
                return
            rid = [(b"x-request-id", uuid.uuid4().hex.encode())]

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), *rid]
                await send(message)

            try:
                await self._other(path, scope, receive, send_with_id)
            except APIError as exc:
                await respond(send_with_id, exc.status, exc.body(), exc.headers()[1:])
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _other(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if path == "/health":
            await respond_json(send, 200, {"status": "ok"})
        elif path == "/ready":
            await self._ready(send)
        elif path == "/metrics":
            await respond(send, 200, self.metrics.render(), content_type=CONTENT_TYPE_LATEST.encode())
        elif path == "/v1/models" and method == "GET":
            await self._models(scope, send)
        elif path.startswith("/admin/"):
            await admin.handle(self, scope, receive, send)
        elif path in _LLM:
            raise APIError(405, f"Method {method} not allowed on {path}")
        else:
            raise APIError(404, f"Unknown path {path}")

    async def _ready(self, send: Send) -> None:
        limiter, usage = self.limiter, self.usage
        if limiter.redis is None:
            redis = "disabled: limits are per process"
        else:
            redis = (
                "up"
                if limiter.redis_up
                else (
                    "down: limits are per process"
                    if limiter.fail_mode == "open"
                    else "down: refusing limited requests"
                )
            )
        if not usage.enabled:
            database = "disabled: usage is not persisted"
        else:
            database = "up" if usage.db_up else "down: usage is buffered and spilled"
        degraded = (limiter.redis is not None and not limiter.redis_up) or (usage.enabled and not usage.db_up)
        body: dict[str, Any] = {
            "status": "starting" if not self.ready else ("degraded" if degraded else "ready"),
            "config": "loaded",
            "redis": redis,
            "database": database,
            "usageBufferRows": len(usage.queue) + usage.spill_rows,
        }
        await respond_json(send, 200 if self.ready else 503, body)

    async def _models(self, scope: Scope, send: Send) -> None:
        raw = bearer(scope["headers"])
        key = self.keys.lookup(raw) if raw else None
        if key is None:
            raise APIError(401, "Invalid or missing API key", code="invalid_api_key")
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "xrouter"}
            for name in self.runtime.routes
            if key.may_use(name)
        ]
        await respond(send, 200, orjson.dumps({"object": "list", "data": data}))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app() -> App:
    """The uvicorn factory: reads the config named by ``$XROUTER_CONFIG``."""
    path = os.environ["XROUTER_CONFIG"]
    return App(load_config(path), path)
