"""Per-key limits: requests per minute, tokens per minute, concurrent requests and
a spend budget.

With Redis, RPM/TPM/concurrency are enforced across every replica by one Lua script
per request, before the upstream call; calls made in the same event-loop tick share
one pipelined round trip (``redisbatch.py``). Settling the request (adding its
tokens, releasing its concurrency slot) rides on a later batch, after the response
has been sent, off the client's critical path. Concurrency slots expire after a TTL
(so a dead replica's slots free themselves); a heartbeat keeps live ones fresh.

RPM-only keys with limits of 200/min or more lease blocks of RPM tokens instead:
1% of the limit (at most 1000) per Redis call, refilled in the background when half
used, so most requests never wait on Redis; one grant per key is in flight at a
time, and requests that find the block empty wait for it. Tokens are taken from the
shared counter atomically, so the limit is never exceeded; the bounded error is the
other way: up to 1.5 blocks per process may sit unused, so the cluster may refuse
up to 1.5% of the limit per process early. TPM is then checked against the window's total
as of the last grant plus this process's own tokens since.

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

from . import limitscripts as lua
from .auth import KeyInfo
from .errors import APIError
from .locallimits import LocalLimiter
from .metrics import Metrics
from .redisbatch import ScriptBatcher
from .slots import ConcurrencySlots

__all__ = ["SETTLE_INTERVAL", "Lease", "Limiter", "LocalLimiter", "lease_block"]

log = logging.getLogger("xrouter.limits")

SETTLE_INTERVAL = 0.05  # seconds: how long settled token counts wait to be batched

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


@dataclass(slots=True)
class _Block:
    """RPM tokens this process holds for one key in the current window."""

    left: int = 0
    expires: float = 0.0  # monotonic end of the window the tokens belong to
    tpm_used: int = 0  # the window's TPM total at the last grant, plus ours since
    exhausted: bool = False  # Redis has no RPM tokens left in this window
    refill: asyncio.Task[None] | None = None  # the one grant in flight for this key


def lease_block(rpm: int) -> int:
    """RPM tokens leased per Redis call: 1% of the limit, at most 1000. A block of 1
    means no leasing (every request asks Redis), which keeps small limits exact."""
    return max(1, min(1000, rpm // 100))


class Limiter(ConcurrencySlots):
    def __init__(
        self,
        redis: Redis | None,
        fail_mode: str,
        metrics: Metrics,
        lease_ttl: float,
        spend: Callable[[str], float],
        slot_grace: float = 5.0,
        namespace: str = "xr",
    ) -> None:
        self.redis = redis
        self.namespace = namespace
        self.fail_mode = fail_mode
        self.metrics = metrics
        # A concurrency slot's TTL. Slots of live requests are refreshed every third of
        # it (``_heartbeat``), so retries and fallbacks may run longer than this; it only
        # bounds how long a crashed replica's slots keep counting.
        self.lease_ttl_ms = str(int((lease_ttl + slot_grace) * 1000))
        self.spend = spend
        self.local = LocalLimiter()
        self.redis_up = redis is not None
        self._sources = {"acquire": lua.ACQUIRE, "lease": lua.LEASE, "settle": lua.SETTLE, "touch": lua.TOUCH}
        self.scripts = ScriptBatcher(redis, self._sources) if redis is not None else None
        self._closing: set[asyncio.Task[None]] = set()
        self.blocks: dict[str, _Block] = {}
        self._unsent: dict[str, int] = {}  # settled tokens per key not yet sent to Redis
        self._tokens_timer: asyncio.TimerHandle | None = None
        self._probe: asyncio.Task[None] | None = None
        # Live concurrency slots held in Redis: key name -> request id -> when acquired.
        self._slots: dict[str, dict[str, float]] = {}
        self._beat: asyncio.Task[None] | None = None
        # Slots released while Redis did not take the release (down, or the send
        # failed): key name -> request ids, released as soon as Redis answers again.
        # Left to their TTL they would refuse the key's requests for that long.
        self._orphans: dict[str, set[str]] = {}
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
        if (
            self.scripts is not None
            and self.redis_up
            and not concurrency
            and lim.rpm is not None
            and lease_block(lim.rpm) > 1
        ):
            try:
                await self._leased(key, lim.rpm)
            except (RedisError, OSError) as exc:
                self._down(exc)
            else:
                return Lease(key, request_id, True, False)
        if self.scripts is not None and self.redis_up:
            spec = f"{_arg(lim.rpm)} {_arg(lim.tpm)} {_arg(lim.max_concurrent)} {self.lease_ttl_ms}"
            try:
                verdict, retry_ms = await self.scripts.call(
                    "acquire", [self.base(key.name)], [spec, request_id]
                )
            except (RedisError, OSError) as exc:
                self._down(exc)
            else:
                if verdict:
                    raise self._reject(_NAMES[int(verdict)], int(retry_ms) / 1000)
                if concurrency:
                    self._hold(key.name, request_id)
                return Lease(key, request_id, True, concurrency)
        if self.redis is not None and self.fail_mode == "closed":
            raise APIError(503, "Rate limiting is unavailable (Redis is down)", code="limits_unavailable")
        limit, retry = self.local.acquire(key)
        if limit is not None:
            raise self._reject(limit, retry)
        return Lease(key, request_id, False, concurrency)

    async def _leased(self, key: KeyInfo, rpm: int) -> None:
        """Admit from this process's block of RPM tokens, asking Redis for a new block
        when it is used up (and refilling in the background when it runs low). At most
        one grant per key is in flight: concurrent requests that find the block empty
        wait for it instead of each leasing a block of their own, which would strand
        all but one of those blocks and refuse that many requests early."""
        block = self.blocks.get(key.name)
        if block is None:
            block = self.blocks[key.name] = _Block()
        tpm = key.limits.tpm
        while True:
            now = time.monotonic()
            current = now < block.expires
            if current and block.left > 0:
                break
            if block.refill is not None:
                await asyncio.shield(block.refill)
                if not self.redis_up:
                    raise ConnectionError("redis is down")
                continue
            if current and (block.exhausted or (tpm is not None and block.tpm_used >= tpm)):
                break  # refused below, until the window ends
            block.refill = asyncio.get_running_loop().create_task(self._refill(key, block, rpm))
        if tpm is not None and block.tpm_used >= tpm:
            raise self._reject("tpm", max(0.0, block.expires - now))
        if block.left <= 0:
            raise self._reject("rpm", max(0.0, block.expires - now))
        block.left -= 1
        size = lease_block(rpm)
        if block.left <= size // 2 and block.refill is None and not block.exhausted:
            block.refill = asyncio.get_running_loop().create_task(self._refill(key, block, rpm))

    async def _grant(self, key: KeyInfo, block: _Block, rpm: int) -> None:
        assert self.scripts is not None
        spec = f"{rpm} {_arg(key.limits.tpm)} {lease_block(rpm)}"
        granted, retry_ms, used = await self.scripts.call("lease", [self.base(key.name)], [spec])
        expires = time.monotonic() + int(retry_ms) / 1000
        if expires > block.expires + 0.5:  # a new window: earlier tokens are void
            block.left = 0
            block.exhausted = False
        block.expires = expires
        block.tpm_used = int(used)
        if granted == -2:
            block.tpm_used = max(block.tpm_used, key.limits.tpm or 0)
        elif granted == -1:
            block.exhausted = True
        elif granted > 0:
            block.left += int(granted)

    async def _refill(self, key: KeyInfo, block: _Block, rpm: int) -> None:
        try:
            await self._grant(key, block, rpm)
        except (RedisError, OSError) as exc:
            self._down(exc)
        finally:
            block.refill = None

    def settle(self, lease: Lease, tokens: int) -> None:
        """Count the request's tokens and release its concurrency slot. Sent with the
        next pipelined batch; not awaited (the response has already gone out)."""
        if not lease.remote:
            self.local.settle(lease.key, tokens, lease.concurrency)
            return
        if lease.concurrency:
            self._release(lease.key.name, lease.request_id)
        if lease.key.limits.tpm is None:
            tokens = 0  # nobody reads them
        block = self.blocks.get(lease.key.name)
        if block is not None:
            block.tpm_used += tokens
        if lease.concurrency and (self.scripts is None or not self.redis_up):
            self._orphans.setdefault(lease.key.name, set()).add(lease.request_id)
            return
        if self.scripts is None or not self.redis_up or (tokens == 0 and not lease.concurrency):
            return
        if not lease.concurrency:
            # Token counts only: summed per key and sent every SETTLE_INTERVAL, so
            # under load Redis sees a few calls a second instead of one per request.
            # (This process's own count, ``block.tpm_used``, is already up to date.)
            name = lease.key.name
            self._unsent[name] = self._unsent.get(name, 0) + tokens
            if self._tokens_timer is None:
                self._tokens_timer = asyncio.get_running_loop().call_later(SETTLE_INTERVAL, self._send_tokens)
            return
        self._free(lease.key.name, lease.request_id, tokens)

    def base(self, name: str) -> str:
        """The Redis key prefix of one API key's limits, in this router's namespace
        (the braces keep all of them in one Redis Cluster slot)."""
        return f"{self.namespace}:{{{name}}}"

    def _send_tokens(self) -> None:
        self._tokens_timer = None
        pending, self._unsent = self._unsent, {}
        if self.scripts is None or not self.redis_up:
            return
        for name, tokens in pending.items():
            if tokens:
                self.scripts.send("settle", [self.base(name)], [tokens, ""])

    def _down(self, exc: BaseException) -> None:
        if self.redis_up:
            log.warning("redis unavailable, limits are per process until it returns: %s", type(exc).__name__)
        self.redis_up = False
        self.metrics.redis_up.set(0)
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.redis is None:  # Redis was configured away (``set_redis``)
                return
            try:
                await self.redis.ping()
            except (RedisError, OSError):
                continue
            log.info("redis is back, limits are shared again")
            self.redis_up = True
            self.metrics.redis_up.set(1)
            if self.scripts is not None:
                self._free_orphans()
            return

    def set_redis(self, redis: Redis | None) -> None:
        """Use another Redis client from now on (``redis.url`` was rotated in its Secret).
        Calls already batched go out on the old client, which is then closed."""
        if redis is self.redis:
            return
        old, old_scripts = self.redis, self.scripts
        self.redis = redis
        self.scripts = ScriptBatcher(redis, self._sources) if redis is not None else None
        self.redis_up = redis is not None
        self._orphans.clear()  # the new Redis never held them
        self.metrics.redis_up.set(1 if self.redis_up else 0)
        loop = asyncio.get_running_loop()
        jobs = [self.check(), *([_close(old, old_scripts)] if old is not None else [])]
        for job in jobs:
            task = loop.create_task(job)
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def check(self) -> None:
        """Ping once at start-up so /ready tells the truth from the first request."""
        if self.redis is None:
            return
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            self._down(exc)

    async def aclose(self) -> None:
        for task in (self._probe, self._beat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._tokens_timer is not None:
            self._tokens_timer.cancel()
            self._send_tokens()
        if self._closing:
            await asyncio.wait(self._closing, timeout=2)
        if self.redis is not None:
            await _close(self.redis, self.scripts)


async def _close(redis: Redis, scripts: ScriptBatcher | None) -> None:
    if scripts is not None:
        await scripts.aclose()
    with contextlib.suppress(RedisError, OSError):
        await redis.aclose()


def _arg(value: int | None) -> int:
    return -1 if value is None else value
