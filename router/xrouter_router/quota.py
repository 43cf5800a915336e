"""Quota-aware routing: what each upstream says about its remaining quota in its
response headers (OpenAI's and Azure's ``x-ratelimit-remaining-*``/``-reset-*``,
Anthropic's ``anthropic-ratelimit-*``, ``retry-after``) marks a target exhausted until
its reset, and routing (``CompiledRoute.order``) then tries it last. Exhaustion is
shared across replicas through Redis: each replica publishes what it saw and reads
the others' twice a second, so the whole fleet steers away before the next 429."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from .routing import TargetState

log = logging.getLogger("xrouter.quota")
SYNC_SECONDS = 0.5
MAX_SKIP = 3600.0  # never trust a reset further away than this
# The braces put every mark in one Redis Cluster slot, so one MGET reads them all.
_PREFIX = "{xrouter:quota}:"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# (remaining, reset) header pairs, built once: they are read on every upstream answer.
_HEADERS = tuple(
    pair
    for kind in ("requests", "tokens", "input-tokens", "output-tokens")
    for pair in (
        (f"x-ratelimit-remaining-{kind}", f"x-ratelimit-reset-{kind}"),
        (f"anthropic-ratelimit-{kind}-remaining", f"anthropic-ratelimit-{kind}-reset"),
    )
)
# Every header skip_for reads: an answer is scanned once for these, and one without
# any of them (nearly every answer) is done with after that one pass. httpx's
# case-insensitive get() walks the whole header list on each call, and skip_for asks
# for 18 names.
_NAMES = frozenset({"retry-after", "retry-after-ms", *(name for pair in _HEADERS for name in pair)})
# Targets whose exhaustion this replica has yet to publish: (provider, model) → until.
_PENDING: dict[tuple[str, str], float] = {}


def _seconds(value: str | None, now: float) -> float | None:
    """A reset or retry-after as seconds from now: ``1.5``, ``6m0s``/``20ms`` (OpenAI),
    an RFC 3339 time (Anthropic) or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if parts and "".join(n + u for n, u in parts) == value:
        return sum(float(n) * _UNITS[u] for n, u in parts)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def skip_for(status: int, headers: Mapping[str, str], now: float) -> float | None:
    """How long (seconds) the upstream says to stay away, or None if it has quota."""
    waits: list[float] = []
    retry = _seconds(headers.get("retry-after-ms"), now)
    retry = retry / 1000 if retry is not None else _seconds(headers.get("retry-after"), now)
    if retry is not None and (status in (429, 503) or retry > 0):
        waits.append(retry)
    for remaining, reset in _HEADERS:
        if _int(headers.get(remaining)) == 0:
            # At 0 with no reset given: a short pause, then look again.
            waits.append(_seconds(headers.get(reset), now) or 1.0)
    if not waits:
        return None
    return min(max(waits), MAX_SKIP)


def observe(target: TargetState, status: int, headers: httpx.Headers) -> None:
    """Read one response's quota headers into the target (and queue it for Redis)."""
    found: dict[str, str] = {}
    for name, value in headers.multi_items():
        if name in _NAMES:  # a repeated header reads as its values comma-joined, as get() has it
            found[name] = f"{found[name]}, {value}" if name in found else value
    if not found:
        return
    now = time.time()
    wait = skip_for(status, found, now)
    if wait is None or wait <= 0:
        return
    until = now + wait
    if until > target.quota_until:
        target.quota_until = until
        _PENDING[(target.provider, target.upstream_model)] = until
        log.info(
            "provider %s model %s is out of quota for %.1f s", target.provider, target.upstream_model, wait
        )


def _key(namespace: str, provider: str, model: str) -> str:
    # Under redis.namespace like every key: provider names are one router's config.
    return f"{namespace}:{_PREFIX}{provider}/{model}"


async def sync(redis: Any, states: Mapping[tuple[str, str], TargetState], namespace: str = "xr") -> None:
    """Publish this replica's new exhaustion marks; adopt the other replicas'."""
    pending = dict(_PENDING)
    _PENDING.clear()
    now = time.time()
    if pending:
        pipe = redis.pipeline(transaction=False)
        for (provider, model), until in pending.items():
            if until > now:
                pipe.set(_key(namespace, provider, model), repr(until), pxat=int(until * 1000))
        await pipe.execute()
    keys = list(states)
    if not keys:
        return
    values = await redis.mget([_key(namespace, p, m) for p, m in keys])
    for key, value in zip(keys, values, strict=True):
        if value is None:
            continue
        try:
            until = float(value)
        except ValueError:
            continue
        state = states[key]
        if until > state.quota_until:
            state.quota_until = until


async def sync_loop(
    redis: Callable[[], Any], states: Mapping[tuple[str, str], TargetState], namespace: str = "xr"
) -> None:
    """Runs for the process's life; without Redis, marks stay per replica."""
    while True:
        await asyncio.sleep(SYNC_SECONDS)
        client = redis()
        if client is None:
            _PENDING.clear()
            continue
        try:
            await sync(client, states, namespace)
        except Exception as exc:  # Redis down: the limiter reports it; routing goes on locally
            log.debug("quota sync failed: %s", type(exc).__name__)
