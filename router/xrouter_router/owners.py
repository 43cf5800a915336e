"""Stored responses (``POST /v1/responses`` passed to a provider that keeps them):
which key created each id, so that only that key (or the admin key) may retrieve,
delete, cancel or list the input items of it; and the metering of background
responses, whose tokens are known only once the result is fetched.

The records are in Redis (the limiter's connection), so every replica and every
restart sees them, for as long as the provider keeps a response (30 days at OpenAI).
Without Redis, or when a write to it fails, this replica keeps the record in memory
(at most ``LOCAL_MAX``, the oldest dropped first).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from .asgi import Message, Send
from .call import Call
from .errors import APIError
from .providers import Usage
from .providers.openai import ResponsesPassThrough
from .providers.passthrough import responses_usage
from .sse import SSEParser

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("xrouter.owners")

RETENTION_SECONDS = 30 * 86400  # how long OpenAI keeps a stored response
# Every record's Redis key starts with this: ``<PREFIX><id>`` is the owner,
# ``<PREFIX><id>:metered`` marks a background response whose tokens were counted.
PREFIX = "xrouter:resp:v1:"
TIMEOUT = 0.25  # the longest a record's read or write may take
LOCAL_MAX = 100_000  # records this replica keeps in memory (oldest dropped first)
# A background response in one of these states has its final usage.
TERMINAL = frozenset({"completed", "incomplete", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class Owner:
    key: str  # the creating key's name
    model: str  # the public model it was created through
    provider: str
    upstream_model: str
    background: bool  # created with ``background: true`` and not streamed: metered when fetched


class Unavailable(Exception):
    """Redis could not be asked, and this replica does not know the answer."""


class Owners:
    """``redis`` returns the client to use (the limiter's, which follows rotations),
    or None when Redis is not configured. ``namespace`` (a router's own, when several
    share one Redis) goes before ``PREFIX`` in every key."""

    def __init__(self, redis: Callable[[], Redis | None], namespace: str = "") -> None:
        self._redis = redis
        self._prefix = f"{namespace}:{PREFIX}" if namespace else PREFIX
        self._local: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def _keep(self, name: str, value: bytes) -> None:
        self._local[name] = (time.monotonic() + RETENTION_SECONDS, value)
        self._local.move_to_end(name)
        while len(self._local) > LOCAL_MAX:
            self._local.popitem(last=False)

    def _known(self, name: str) -> bytes | None:
        kept = self._local.get(name)
        return kept[1] if kept is not None and kept[0] > time.monotonic() else None

    async def remember(self, response_id: str, owner: Owner) -> None:
        value = orjson.dumps(asdict(owner))
        name = self._prefix + response_id
        redis = self._redis()
        if redis is None:
            self._keep(name, value)
            return
        try:
            await asyncio.wait_for(redis.set(name, value, ex=RETENTION_SECONDS), TIMEOUT)
        except (RedisError, OSError, TimeoutError) as exc:
            self._keep(name, value)
            log.warning(
                "could not record a response's owner in Redis (%s): only this replica knows it",
                type(exc).__name__,
            )

    async def owner(self, response_id: str) -> Owner | None:
        """The record, None if there is none; raises ``Unavailable``."""
        name = self._prefix + response_id
        value = self._known(name)
        redis = self._redis()
        if value is None and redis is not None:
            try:
                got = await asyncio.wait_for(redis.get(name), TIMEOUT)
            except (RedisError, OSError, TimeoutError) as exc:
                raise Unavailable(type(exc).__name__) from None
            value = got if isinstance(got, bytes) else None
        if value is None:
            return None
        try:
            return Owner(**orjson.loads(value))
        except (orjson.JSONDecodeError, TypeError):  # not a record this version wrote
            return None

    async def claim(self, response_id: str) -> bool:
        """True once per response across every replica: this caller meters it.
        Raises ``Unavailable`` when Redis is configured but cannot be asked."""
        name = self._prefix + response_id + ":metered"
        redis = self._redis()
        if redis is None:
            if self._known(name) is not None:
                return False
            self._keep(name, b"1")
            return True
        try:
            won = await asyncio.wait_for(redis.set(name, b"1", ex=RETENTION_SECONDS, nx=True), TIMEOUT)
        except (RedisError, OSError, TimeoutError) as exc:
            raise Unavailable(type(exc).__name__) from None
        return bool(won)


def final_usage(body: bytes) -> Usage | None:
    """A fetched background response's usage once it is final (None before, or
    when it used no tokens)."""
    data = _json(body)
    if data is None or data.get("status") not in TERMINAL:
        return None
    usage = responses_usage(data)
    return usage if usage.prompt or usage.completion else None


def response_id(body: bytes, stream: bool) -> str | None:
    """The id of the response a create answer (or the first bytes of its stream) is about."""
    if stream:
        for ev in SSEParser().feed(body):
            data = _json(ev.data)
            if data is not None and data.get("type") == "response.created":
                inner = data.get("response")
                return _id(inner.get("id")) if isinstance(inner, dict) else None
        return None
    data = _json(body)
    return _id(data.get("id")) if data is not None else None


def _json(data: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _id(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 200 else None


class Recording:
    """The ``send`` of a ``POST /v1/responses`` that the provider stores: records the
    response's owner before the answer's first byte reaches the client, so a
    retrieval right after it (on any replica) finds the record."""

    __slots__ = ("_send", "adapters", "call", "owners", "payload", "pending", "status")

    def __init__(
        self, owners: Owners, adapters: dict[str, Any], call: Call, payload: dict[str, Any], send: Send
    ) -> None:
        self._send = send
        self.owners = owners
        self.adapters = adapters
        self.call = call
        self.payload = payload
        self.pending = True
        self.status = 0

    async def __call__(self, message: Message) -> None:
        if not self.pending:
            pass
        elif message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.pending = False
            call = self.call
            if self.status == 200 and isinstance(self.adapters.get(call.provider), ResponsesPassThrough):
                rid = response_id(message.get("body", b""), call.stream)
                if rid is not None and call.key is not None:
                    background = bool(self.payload.get("background")) and not call.stream
                    owner = Owner(call.key.name, call.model, call.provider, call.upstream_model, background)
                    await self.owners.remember(rid, owner)
        await self._send(message)


def check_background(rt: Runtime, payload: dict[str, Any], model: str, redis: bool) -> None:
    """Refuse ``background: true`` (not streamed) on a model served by a provider
    that keeps responses when there is no Redis: its tokens are counted when the
    result is fetched, exactly once across replicas, and that mark lives in Redis."""
    if not payload.get("background") or payload.get("stream") or redis:
        return
    if any(isinstance(rt.adapters[t.state.provider], ResponsesPassThrough) for t in rt.routes[model].targets):
        raise APIError(
            400,
            "background responses need redis.url: the router meters them when the result is fetched,"
            " once across replicas, and keeps that mark in Redis",
            param="background",
            code="invalid_request",
        )
