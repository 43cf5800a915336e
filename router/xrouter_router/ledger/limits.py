"""Per-key limits: requests per minute, tokens per minute, concurrent requests and
a spend budget (``budgetguard.py``).

With Redis, RPM/TPM/concurrency are enforced across every replica by one Lua script
per request, before the upstream call; calls made in the same event-loop tick share
one pipelined round trip (``redisbatch.py``). Settling the request (adding its
tokens, releasing its concurrency slot and reservations) rides on a later batch,
after the response has been sent, off the client's critical path. Concurrency slots
are kept by ``slots.py``. Keys with an RPM of 200/min or more and no concurrency
limit lease blocks of RPM tokens instead (``rpmlease.py``).

Windows are fixed calendar minutes on Redis's clock. TPM reserves an upper bound of
each request's tokens (prompt estimate plus its maximum output) when it is admitted
and corrects it to the real count when it settles; a request is admitted while the
window's tokens (used plus reserved) are under the limit, so the window passes it by
at most one request's reservation. On leased keys the check is this process's view
of the window (as of its last grant plus its own tokens since).
Without Redis, or while it is down in ``failMode: open``, the same limits are
enforced per process. In ``failMode: closed`` requests are refused with 503 while
Redis is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..auth import KeyInfo
from ..errors import APIError
from ..metrics import Metrics
from . import budgetscripts
from . import limitscripts as lua
from .budgetguard import BudgetGuard, Hold
from .locallimits import LocalLimiter
from .redisbatch import ScriptBatcher
from .rpmlease import RpmLeases, _Block, lease_block
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
    held: int = 0  # TPM tokens reserved for the request, in Redis's window ``minute``
    minute: int = -1
    block_held: int = 0  # TPM tokens reserved in this process's leased block
    limited: bool = True  # RPM, TPM or concurrency apply (else only the budget)
    hold: Hold | None = None  # the budget reservation


class Limiter(ConcurrencySlots, RpmLeases):
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
        self._sources = {
            "acquire": lua.ACQUIRE,
            "lease": lua.LEASE,
            "settle": lua.SETTLE,
            "touch": lua.TOUCH,
            "budget_reserve": budgetscripts.RESERVE,
            "budget_settle": budgetscripts.SETTLE,
            "budget_load": budgetscripts.LOAD,
            "budget_peek": budgetscripts.PEEK,
            "budget_lease": budgetscripts.LEASE,
        }
        # Set by ``State`` (it needs the usage recorder); without it budgets are checked
        # against ``spend`` alone, per process.
        self.budget: BudgetGuard | None = None
        self.scripts = ScriptBatcher(redis, self._sources) if redis is not None else None
        self._closing: set[asyncio.Task[None]] = set()
        self.blocks: dict[str, _Block] = {}
        # Settled TPM tokens not yet sent to Redis: (key, window) -> (tokens, reserved).
        self._unsent: dict[tuple[str, int], tuple[int, int]] = {}
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

    @property
    def configured(self) -> bool:
        return self.redis is not None

    async def acquire(
        self, key: KeyInfo, request_id: str, want_usd: float = 0.0, want_tokens: int = 0
    ) -> Lease | None:
        """Admit the request or raise a 429 (503 with Redis down in fail-closed mode).
        ``want_usd`` and ``want_tokens`` bound its cost and tokens (``budgetguard.want``):
        they are reserved against the budget and TPM until ``settle``."""
        lim = key.limits
        if lim.budget_usd is not None and self.budget is None and self.spend(key.name) >= lim.budget_usd:
            raise self._reject("budget", None)
        lease = await self._limits(key, request_id, want_tokens if lim.tpm is not None else 0)
        if lim.budget_usd is None or self.budget is None:
            return lease
        try:
            hold = await self.budget.reserve(key, request_id, want_usd)
        except APIError as exc:
            if lease is not None:
                self.settle(lease, 0)  # frees the slot and the TPM reservation
            if exc.status == 429:
                self.metrics.limit_rejections.labels("budget").inc()
            raise
        if lease is None:
            lease = Lease(key, request_id, False, False, limited=False)
        lease.hold = hold
        return lease

    async def _limits(self, key: KeyInfo, request_id: str, want: int) -> Lease | None:
        lim = key.limits
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
                block = self.blocks[key.name]
                block.tpm_used += want  # reserved in this process's view of the window
                return Lease(key, request_id, True, False, block_held=want)
        if self.scripts is not None and self.redis_up:
            spec = f"{_arg(lim.rpm)} {_arg(lim.tpm)} {_arg(lim.max_concurrent)} {self.lease_ttl_ms} {want}"
            try:
                verdict, value = await self.scripts.call("acquire", [self.base(key.name)], [spec, request_id])
            except (RedisError, OSError) as exc:
                self._down(exc)
            else:
                if verdict:
                    raise self._reject(_NAMES[int(verdict)], int(value) / 1000)
                if concurrency:
                    self._hold(key.name, request_id)
                return Lease(key, request_id, True, concurrency, held=want, minute=int(value))
        if self.redis is not None and self.fail_mode == "closed":
            raise APIError(503, "Rate limiting is unavailable (Redis is down)", code="limits_unavailable")
        limit, retry = self.local.acquire(key, want)
        if limit is not None:
            raise self._reject(limit, retry)
        return Lease(key, request_id, False, concurrency, held=want, minute=self.local.minute)

    def settle(self, lease: Lease, tokens: int, cost: float = 0.0) -> None:
        """Count the request's tokens and cost, release its concurrency slot and its
        reservations. Sent with the next pipelined batch; not awaited (the response has
        already gone out)."""
        if lease.hold is not None and self.budget is not None:
            self.budget.settle(lease.hold, lease.request_id, cost)
        if not lease.limited:
            return
        if not lease.remote:
            self.local.settle(lease.key, tokens, lease.concurrency, lease.held, lease.minute)
            return
        if lease.concurrency:
            self._release(lease.key.name, lease.request_id)
        if lease.key.limits.tpm is None:
            tokens = 0  # nobody reads them
        block = self.blocks.get(lease.key.name)
        if block is not None:
            block.tpm_used += tokens - lease.block_held
        if lease.concurrency and (self.scripts is None or not self.redis_up):
            self._orphans.setdefault(lease.key.name, set()).add(lease.request_id)
            return
        if (
            self.scripts is None
            or not self.redis_up
            or (tokens == 0 and not lease.held and not lease.concurrency)
        ):
            return
        if not lease.concurrency:
            # Token counts only: summed per key and window and sent every SETTLE_INTERVAL,
            # so under load Redis sees a few calls a second instead of one per request.
            # (This process's own count, ``block.tpm_used``, is already up to date.)
            k = (lease.key.name, lease.minute)
            sent, held = self._unsent.get(k, (0, 0))
            self._unsent[k] = (sent + tokens, held + lease.held)
            if self._tokens_timer is None:
                self._tokens_timer = asyncio.get_running_loop().call_later(SETTLE_INTERVAL, self._send_tokens)
            return
        self._free(lease.key.name, lease.request_id, tokens, lease.held, lease.minute)

    def base(self, name: str) -> str:
        """The Redis key prefix of one API key's limits, in this router's namespace
        (the braces keep all of them in one Redis Cluster slot)."""
        return f"{self.namespace}:{{{name}}}"

    def _send_tokens(self) -> None:
        self._tokens_timer = None
        pending, self._unsent = self._unsent, {}
        if self.scripts is None or not self.redis_up:
            return
        for (name, minute), (tokens, held) in pending.items():
            if tokens or held:
                self.scripts.send("settle", [self.base(name)], [tokens, "", held, minute])

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
                if self.budget is not None:
                    self.budget.flush()
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
        if self.budget is not None:
            await self.budget.aclose()
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
