"""The response cache (a route's ``cache``): exact matches on the normalized request,
kept in Redis, per key or shared.

The key is a digest of every request field that can change the answer (``stream``
and ``stream_options`` included), of what the route's answers come from (its
targets and fallbacks: provider type, base URL, upstream model), and of the key's
name unless the scope is shared. So a re-pointed route never serves its old
upstream's answers, and a stream is only ever answered from a stream.

Only complete 200 answers are stored, and only up to ``maxEntryBytes``; errors and
broken streams never are. A chat stream is stored as the bytes the client got and
replayed unchanged (``cachereplay.py``). ``Cache-Control: no-cache`` on the request
skips the lookup (the fresh answer is stored); ``no-store`` skips both. The cache is
an optimisation and never a reason to fail: with Redis down or not configured, every
request is a miss, and after an error the cache is left alone for a few seconds so a
dead Redis costs no time per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from . import failover
from .asgi import Message, Scope, Send, header, respond
from .cachereplay import StreamRecorder
from .call import Call
from .config import CacheConfig
from .metrics import Metrics
from .runtime import Runtime

log = logging.getLogger("xrouter.cache")

# Request fields that do not change the answer: leaving them out of the key lets
# requests differing only in them share an entry. (``stream`` and ``stream_options``
# do change it: a stream's chunks, and its usage chunk when asked for.)
IGNORED = frozenset({"user", "metadata", "store", "prompt_cache_key", "safety_identifier"})
_STREAMING = ("stream", "stream_options")  # in the key, normalized
# Every cache entry's Redis key starts with this, and is built in ``cache_key`` only.
# v2: entries of v1 were keyed without ``stream`` and the route's targets.
PREFIX = "xrouter:cache:v2:"
TIMEOUT = 0.25  # the longest a lookup or a store may take
DOWN_SECONDS = 5.0  # after a Redis error, how long every request is a miss without asking
HIT = (b"x-xrouter-cache", b"hit")
MISS = (b"x-xrouter-cache", b"miss")


# Responses API fields that tie a request to state the provider keeps: the answer
# depends on (or creates) that state, so such a request is never served from the
# cache nor stored in it.
STATEFUL = ("previous_response_id", "conversation", "background", "prompt")


def cacheable(kind: str, payload: dict[str, Any]) -> bool:
    """Whether this request may be answered from the cache and its answer kept.

    A ``/v1/responses`` request qualifies only with ``store: false`` (the API stores
    by default, and each stored response is a new object at the provider that later
    requests and ``GET /v1/responses/{id}`` refer to) and none of ``STATEFUL``.
    Streams are cached for chat only (``cachereplay.py`` knows how a chat stream ends)."""
    if kind == "responses" and (
        payload.get("store") is not False or any(payload.get(f) is not None for f in STATEFUL)
    ):
        return False
    return not payload.get("stream") or kind == "chat"


def cache_key(
    kind: str,
    payload: dict[str, Any],
    config: CacheConfig,
    key_name: str,
    variant: str | None = None,
    targets: str = "",
) -> str:
    """The Redis key for this request: a digest of what changes the answer
    (``variant``: a request header that does, such as ``anthropic-beta``;
    ``targets``: ``targets_digest`` of the route)."""
    relevant = {k: v for k, v in payload.items() if k not in IGNORED and k not in _STREAMING}
    # ``stream: false`` and no ``stream`` are the same request; options only count for a stream.
    stream = bool(payload.get("stream"))
    parts = [kind, relevant, variant, targets, stream, payload.get("stream_options") if stream else None]
    digest = hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()
    # Key names are unique, and only the name's digest is stored, not the name.
    scope = "shared" if config.scope == "shared" else hashlib.sha256(key_name.encode()).hexdigest()[:32]
    return f"{PREFIX}{scope}:{digest}"


def targets_digest(rt: Runtime, model: str) -> str:
    """What a route's answers can come from: each target of the route and of its
    fallbacks, as (provider type, base URL, upstream model)."""
    route = rt.routes[model]
    sources = []
    for name in [model, *route.fallbacks, *route.context_window_fallbacks]:
        for t in rt.routes[name].targets if name in rt.routes else ():
            adapter = rt.adapters[t.state.provider]
            sources.append((name, adapter.provider.type.value, adapter.base_url, t.state.upstream_model))
    return hashlib.sha256(orjson.dumps(sources)).hexdigest()[:32]


def _directives(scope: Scope) -> set[str]:
    raw = header(scope, b"cache-control")
    if raw is None:
        return set()
    return {d.strip().split("=", 1)[0].lower() for d in raw.decode("latin-1").split(",")}


class ResponseCache:
    """``redis`` returns the client to use (the limiter's, which follows rotations),
    or None when Redis is not configured."""

    def __init__(self, redis: Callable[[], Redis | None], metrics: Metrics, namespace: str = "xr") -> None:
        self._redis = redis
        self._ns = namespace + ":"  # redis.namespace: routers sharing a Redis share no entry
        self.metrics = metrics
        self._down_until = 0.0
        self._digests: dict[str, str] = {}  # targets_digest by model, for ``_runtime``
        self._runtime: Runtime | None = None

    def _client(self) -> Redis | None:
        if time.monotonic() < self._down_until:
            return None
        return self._redis()

    def _failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + DOWN_SECONDS
        log.warning("response cache unavailable (%s); serving from upstream", type(exc).__name__)

    async def get(self, key: str) -> bytes | None:
        redis = self._client()
        if redis is None:
            return None
        try:
            value = await asyncio.wait_for(redis.get(self._ns + key), TIMEOUT)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return None
        return value if isinstance(value, bytes) else None

    async def put(self, key: str, body: bytes, ttl: int) -> None:
        redis = self._client()
        if redis is None:
            return
        try:
            await asyncio.wait_for(redis.set(self._ns + key, body, ex=ttl), TIMEOUT)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)

    async def serve(
        self, call: Call, rt: Runtime, metrics: Metrics, payload: dict[str, Any], scope: Scope, send: Send
    ) -> None:
        """``failover.serve`` for a route with a cache: answer from it, or go upstream
        and keep the answer."""
        config = rt.routes[call.model].cache
        assert config is not None and call.key is not None
        call.cache_status = "cache_miss"
        directives = _directives(scope)
        key = None
        if "no-store" not in directives and cacheable(call.kind, payload):
            variant = None
            if call.kind == "messages":  # beta features reach a passed-through provider
                beta = header(scope, b"anthropic-beta")
                variant = beta.decode("latin-1") if beta is not None else None
            if rt is not self._runtime:  # a reload may have re-pointed routes
                self._runtime, self._digests = rt, {}
            targets = self._digests.get(call.model)
            if targets is None:
                targets = self._digests[call.model] = targets_digest(rt, call.model)
            key = cache_key(call.kind, payload, config, call.key.name, variant, targets)
            if "no-cache" not in directives and await self._hit(call, key, send):
                metrics.child(metrics.cache_hits, call.model).inc()
                return
        metrics.child(metrics.cache_misses, call.model).inc()
        capture = _Capture(send, config.max_entry_bytes if key is not None else 0, call.stream)
        await failover.serve(call, rt, metrics, payload, scope, capture)
        if key is None or call.status != 200:
            return
        body = capture.stream.result() if capture.stream is not None else capture.body
        if body is not None:
            await self.put(key, body, config.ttl_seconds)

    async def _hit(self, call: Call, key: str, send: Send) -> bool:
        body = await self.get(key)
        if body is None:
            return False
        call.status, call.provider, call.cache_status = 200, "cache", "cache_hit"
        if call.stream:  # the stream's own bytes (the key holds ``stream``)
            headers = [HIT, (b"cache-control", b"no-cache"), *call.meta()]
            await respond(send, 200, body, headers, content_type=b"text/event-stream")
        else:
            await respond(send, 200, body, [HIT, *call.meta()])
        call.answered = True
        return True


class _Capture:
    """A ``send`` that marks the answer ``miss`` and keeps a complete 200 body of at
    most ``limit`` bytes, or for a stream feeds it to a ``StreamRecorder`` (an error is
    never kept; nothing is with ``limit`` 0)."""

    __slots__ = ("_send", "body", "limit", "status", "stream")

    def __init__(self, send: Send, limit: int, stream: bool) -> None:
        self._send = send
        self.limit = limit
        self.status = 0
        self.body: bytes | None = None
        self.stream = StreamRecorder(limit) if stream and limit else None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            message["headers"] = [*message.get("headers", ()), MISS]
        elif self.status != 200:
            pass
        elif self.stream is not None:
            self.stream.feed(message.get("body", b""))
        elif self.limit:
            body = message.get("body", b"")
            if self.body is None and not message.get("more_body", False) and len(body) <= self.limit:
                self.body = bytes(body)
            self.limit = 0  # only a single-message body is a whole, non-streamed answer
        await self._send(message)
