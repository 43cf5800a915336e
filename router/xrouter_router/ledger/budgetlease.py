"""Leases of budget: a replica reserves a slice of a large budget in Redis at once
(``budgetscripts.LEASE``) and admits requests into it by itself, so most budgeted
requests do not wait on Redis. The slice is ``LEASE_FRACTION`` of the budget, and is
only taken when it holds at least ``LEASE_MIN_REQUESTS`` reservations of the size
being asked: small budgets stay exact, one Redis call per request.

The bound on overspend is unchanged: a request is admitted into a lease only if its
whole reservation fits in what the lease has left, and a lease is only granted out of
room under the budget (``spent + reserved``). A renewal never shrinks a lease under
what may have been admitted into it (its size less the costs the renewal moves to
``spent``), so requests keep being admitted into it while it is renewed.

The bounded error is the other way, as with RPM leases: each replica may hold up to
``LEASE_FRACTION`` of the budget that other replicas cannot use, so a replica may
refuse a request up to that much early; idle leases are returned after
``IDLE_SECONDS``. A lease is renewed when half used, and every ``RENEW_SECONDS``
while in use, which also moves its settled costs into the shared ``spent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import RedisError

from .redisbatch import ScriptBatcher

LEASE_FRACTION = 0.01
LEASE_MIN_REQUESTS = 10
RENEW_SECONDS = 1.0
RENEW_GAP_SECONDS = 0.01  # a lease too small for a request is renewed at most this often
IDLE_SECONDS = 5.0


class Ledger(Protocol):
    """What the guard reads from the usage recorder (``usage.py``)."""

    def account(self, key_name: str, when: float | None = None) -> str: ...

    def recorded(self, key_name: str, account: str) -> float | None: ...

    def expiry_ms(self, key_name: str) -> int: ...

    def accounts(self) -> dict[str, str]: ...


class Shared(Protocol):
    """What the guard shares with the limiter: its Redis, and its view of Redis's health."""

    scripts: ScriptBatcher | None
    redis_up: bool
    fail_mode: str

    @property
    def configured(self) -> bool: ...

    def base(self, name: str) -> str: ...

    def _down(self, exc: BaseException) -> None: ...


@dataclass(slots=True)
class _Lease:
    name: str
    account: str
    budget: float
    target: float  # the slice asked for beyond what is in flight
    size: float = 0.0  # USD granted (in flight + room)
    inflight: float = 0.0  # reservations of admitted requests not settled yet
    cost: float = 0.0  # settled costs not yet added to Redis's ``spent``
    renewed: float = 0.0  # monotonic
    used: float = 0.0  # monotonic: the last admission
    renewing: bool = False


class BudgetLeases:
    def __init__(self, shared: Shared, ledger: Ledger, ttl_ms: str) -> None:
        self.shared, self.ledger, self.ttl_ms = shared, ledger, ttl_ms
        self.id = f"lease:{uuid.uuid4().hex}"
        self.leases: dict[str, _Lease] = {}  # by account key
        self._loop: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def admit(self, acct: str, name: str, account: str, budget: float, amount: float) -> bool:
        """Admit into this replica's lease; False: take the per-request path."""
        target = budget * LEASE_FRACTION
        if target < LEASE_MIN_REQUESTS * amount:
            return False
        lease = self.leases.get(acct)
        if lease is None:
            lease = self.leases[acct] = _Lease(name, account, budget, target)
        now = time.monotonic()
        lease.used, lease.budget, lease.target = now, budget, target
        if self._loop is None or self._loop.done():
            self._loop = asyncio.get_running_loop().create_task(self._run())
        fresh = now - lease.renewed < int(self.ttl_ms) / 2000
        if fresh and lease.inflight + lease.cost + amount <= lease.size:
            lease.inflight += amount
            if lease.inflight + lease.cost > lease.size / 2:  # one renewal at a time
                self._renew_soon(acct, lease)
            return True
        if lease.size == 0 or now - lease.renewed > RENEW_GAP_SECONDS:
            self._renew_soon(acct, lease)  # a lease (or a fresh one) for the requests that follow
        return False

    def settle(self, acct: str, amount: float, cost: float) -> None:
        lease = self.leases.get(acct)
        if lease is None:  # returned already (cannot happen while it holds requests)
            return
        lease.inflight = max(0.0, lease.inflight - amount)
        lease.cost += cost

    def _renew_soon(self, acct: str, lease: _Lease) -> None:
        if lease.renewing:
            return
        lease.renewing = True
        task = asyncio.get_running_loop().create_task(self._renew(acct, lease, lease.target))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _renew(self, acct: str, lease: _Lease, want: float) -> None:
        """Set the lease to ``want`` (USD in all) as far as it fits; 0 returns it."""
        shared = self.shared
        try:
            if shared.scripts is None or not shared.redis_up:
                return
            cost = lease.cost
            floor = max(lease.size - cost, lease.inflight)
            args: list[str | int] = [
                repr(lease.budget),
                self.id,
                repr(floor),
                repr(want),
                repr(cost),
                self.ttl_ms,
                self.ledger.expiry_ms(lease.name),
            ]
            try:
                grant, _, _ = await shared.scripts.call("budget_lease", [acct], args)
            except (RedisError, OSError) as exc:
                shared._down(exc)
                return
            if grant == b"-1":
                return  # not loaded: the per-request path loads the account
            lease.cost -= cost
            lease.size = float(grant)
            lease.renewed = time.monotonic()
        finally:
            lease.renewing = False

    async def _run(self) -> None:
        """Renew leases in use, moving their settled costs into ``spent``; return idle ones."""
        while self.leases:
            await asyncio.sleep(RENEW_SECONDS)
            now = time.monotonic()
            for acct, lease in list(self.leases.items()):
                if lease.renewing:
                    continue
                if now - lease.used > IDLE_SECONDS and lease.inflight == 0:
                    lease.renewing = True
                    lease.size = 0.0  # nothing more is admitted into it
                    await self._renew(acct, lease, 0.0)
                    if lease.size == 0 and lease.cost == 0:
                        del self.leases[acct]
                elif lease.cost or now - lease.renewed >= RENEW_SECONDS:
                    lease.renewing = True
                    await self._renew(acct, lease, lease.target)

    def flush(self) -> None:
        """Redis is back: renew every lease (sending the costs settled meanwhile)."""
        for acct, lease in self.leases.items():
            self._renew_soon(acct, lease)

    async def aclose(self) -> None:
        """Return the leases (and send their costs) on the way out."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        for acct, lease in list(self.leases.items()):
            lease.renewing = True
            lease.size = 0.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._renew(acct, lease, 0.0), 2)
