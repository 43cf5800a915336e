"""Per-key limits: requests per minute, tokens per minute, concurrent requests and
a spend budget.

With Redis, RPM/TPM/concurrency are enforced across every replica by one Lua script
per request (a single round trip, before the upstream call). Settling the request
(adding its tokens, releasing its concurrency slot) is a second call made after the
response has been sent, off the client's critical path.

Windows are fixed calendar minutes on Redis's clock. TPM is checked against tokens
already used in the window, so one request may overshoot it by its own size.
Without Redis, or while it is down in ``failMode: open``, the same limits are
enforced per process. In ``failMode: closed`` requests are refused with 503 while
Redis is down. Budgets are checked against recorded spend (see ``usage.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .auth import KeyInfo
from .errors import APIError
from .metrics import Metrics

log = logging.getLogger("xrouter.limits")

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local minute = math.floor(now / 60000)
local retry = 60000 - (now % 60000)
local base = KEYS[1]
local rpm, tpm, conc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local rpm_key = base .. ':rpm:' .. minute
local conc_key = base .. ':conc'
if tpm >= 0 then
  local used = tonumber(redis.call('GET', base .. ':tpm:' .. minute) or '0')
  if used >= tpm then return {2, retry} end
end
if rpm >= 0 then
  local n = tonumber(redis.call('GET', rpm_key) or '0')
  if n >= rpm then return {1, retry} end
end
if conc >= 0 then
  redis.call('ZREMRANGEBYSCORE', conc_key, '-inf', now)
  if redis.call('ZCARD', conc_key) >= conc then return {3, 1000} end
end
if rpm >= 0 then
  redis.call('INCR', rpm_key)
  redis.call('PEXPIRE', rpm_key, 61000)
end
if conc >= 0 then
  redis.call('ZADD', conc_key, now + tonumber(ARGV[5]), ARGV[4])
  redis.call('PEXPIRE', conc_key, tonumber(ARGV[5]))
end
return {0, 0}
"""

_SETTLE = """
local t = redis.call('TIME')
local minute = math.floor((tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) / 60000)
local tokens = tonumber(ARGV[1])
if tokens > 0 then
  local k = KEYS[1] .. ':tpm:' .. minute
  redis.call('INCRBY', k, tokens)
  redis.call('PEXPIRE', k, 61000)
end
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[1] .. ':conc', ARGV[2]) end
return 0
"""

_NAMES = {1: "rpm", 2: "tpm", 3: "concurrency"}
_MESSAGES = {
    "rpm": "Rate limit reached: requests per minute",
    "tpm": "Rate limit reached: tokens per minute",
    "concurrency": "Too many concurrent requests for this key",
    "budget": "Budget exhausted for this key",
}


@dataclass(slots=True)
class Lease:
    key: KeyInfo
    request_id: str
    remote: bool  # held in Redis (else in this process)
    concurrency: bool


class LocalLimiter:
    """The same limits, in this process only."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._minute = -1
        self._requests: dict[str, int] = {}
        self._tokens: dict[str, int] = {}
        self.concurrent: dict[str, int] = {}

    def _roll(self) -> int:
        now = self._clock()
        minute = int(now // 60)
        if minute != self._minute:
            self._minute = minute
            self._requests.clear()
            self._tokens.clear()
        return 60 - int(now % 60)

    def acquire(self, key: KeyInfo) -> tuple[str | None, float]:
        retry = self._roll()
        lim, name = key.limits, key.name
        if lim.tpm is not None and self._tokens.get(name, 0) >= lim.tpm:
            return "tpm", retry
        if lim.rpm is not None and self._requests.get(name, 0) >= lim.rpm:
            return "rpm", retry
        if lim.max_concurrent is not None and self.concurrent.get(name, 0) >= lim.max_concurrent:
            return "concurrency", 1
        self._requests[name] = self._requests.get(name, 0) + 1
        if lim.max_concurrent is not None:
            self.concurrent[name] = self.concurrent.get(name, 0) + 1
        return None, 0

    def settle(self, key: KeyInfo, tokens: int, concurrency: bool) -> None:
        self._roll()
        if tokens:
            self._tokens[key.name] = self._tokens.get(key.name, 0) + tokens
        if concurrency:
            self.concurrent[key.name] = max(0, self.concurrent.get(key.name, 0) - 1)


class Limiter:
    def __init__(
        self,
        redis: Redis | None,
        fail_mode: str,
        metrics: Metrics,
        lease_ttl: float,
        spend: Callable[[str], float],
    ) -> None:
        self.redis = redis
        self.fail_mode = fail_mode
        self.metrics = metrics
        self.lease_ttl_ms = str(int(lease_ttl * 1000) + 5000)
        self.spend = spend
        self.local = LocalLimiter()
        self.redis_up = redis is not None
        self._acquire = redis.register_script(_ACQUIRE) if redis is not None else None
        self._settle = redis.register_script(_SETTLE) if redis is not None else None
        self._probe: asyncio.Task[None] | None = None
        metrics.redis_up.set(1 if self.redis_up else 0)

    def _reject(self, limit: str, retry_after: float | None) -> APIError:
        self.metrics.limit_rejections.labels(limit).inc()
        return APIError(429, _MESSAGES[limit], code=f"{limit}_limit_exceeded", retry_after=retry_after)

    async def acquire(self, key: KeyInfo, request_id: str) -> Lease | None:
        """Admit the request or raise a 429 (503 with Redis down in fail-closed mode)."""
        lim = key.limits
        if lim.budget_usd is not None and self.spend(key.name) >= lim.budget_usd:
            raise self._reject("budget", None)
        if lim.rpm is None and lim.tpm is None and lim.max_concurrent is None:
            return None
        concurrency = lim.max_concurrent is not None
        if self._acquire is not None and self.redis_up:
            args: list[str | int] = [
                _arg(lim.rpm),
                _arg(lim.tpm),
                _arg(lim.max_concurrent),
                request_id,
                self.lease_ttl_ms,
            ]
            try:
                verdict, retry_ms = await self._acquire(keys=[f"xr:{{{key.name}}}"], args=args)
            except (RedisError, OSError) as exc:
                self._down(exc)
            else:
                if verdict:
                    raise self._reject(_NAMES[int(verdict)], int(retry_ms) / 1000)
                return Lease(key, request_id, True, concurrency)
        if self.redis is not None and self.fail_mode == "closed":
            raise APIError(503, "Rate limiting is unavailable (Redis is down)", code="limits_unavailable")
        limit, retry = self.local.acquire(key)
        if limit is not None:
            raise self._reject(limit, retry)
        return Lease(key, request_id, False, concurrency)

    async def settle(self, lease: Lease, tokens: int) -> None:
        """Count the request's tokens and release its concurrency slot."""
        if not lease.remote:
            self.local.settle(lease.key, tokens, lease.concurrency)
            return
        if self._settle is None or not self.redis_up or (tokens == 0 and not lease.concurrency):
            return
        args: list[str | int] = [tokens, lease.request_id if lease.concurrency else ""]
        try:
            await self._settle(keys=[f"xr:{{{lease.key.name}}}"], args=args)
        except (RedisError, OSError) as exc:
            self._down(exc)

    def _down(self, exc: BaseException) -> None:
        if self.redis_up:
            log.warning("redis unavailable, limits are per process until it returns: %s", type(exc).__name__)
        self.redis_up = False
        self.metrics.redis_up.set(0)
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        assert self.redis is not None
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.redis.ping()
            except (RedisError, OSError):
                continue
            log.info("redis is back, limits are shared again")
            self.redis_up = True
            self.metrics.redis_up.set(1)
            return

    async def check(self) -> None:
        """Ping once at start-up so /ready tells the truth from the first request."""
        if self.redis is None:
            return
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            self._down(exc)

    async def aclose(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        if self.redis is not None:
            await self.redis.aclose()


def _arg(value: int | None) -> int:
    return -1 if value is None else value
