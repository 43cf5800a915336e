"""Budgets (``limits.budgetUsd``) that hold across replicas: each request reserves an
upper bound of its cost before the upstream call and settles what it really cost
after, atomically in Redis (``budgetscripts.py``), in one account shared by every
replica. A request is admitted while ``spent + reserved < budgetUsd``; its
reservation is then held. As a settled request never costs more than it reserved,
``spent`` never passes ``budgetUsd`` by more than the largest single reservation.

The reservation (``want``) is the prompt estimated from the request body's size at
the route's highest input price, plus the request's ``max_tokens``
(``max_completion_tokens``, ``max_output_tokens``), or ``DEFAULT_MAX_OUTPUT`` when it
sets none, at the route's highest output price (its targets and fallbacks).

PostgreSQL stays the book of record. An account missing in Redis (first use, a Redis
that lost its data) is loaded from PostgreSQL's sum, and every
``SPEND_REFRESH_SECONDS`` each account is raised to PostgreSQL's figure if that is
higher (``LOAD``: never lowered, as Redis has counted rows not yet written).

Fail modes. Redis down, ``failMode: open``: each replica reserves in its own memory
against the spend it last read from PostgreSQL plus its own; the bound then holds per
replica, plus what other replicas spend within one refresh. ``failMode: closed``: 503.
Costs settled while Redis is down are sent to it when it returns. A budgeted key
whose spend is unknown (PostgreSQL not read since start-up, and Redis without the
account or down) is refused with 503, so a pod started during an outage cannot let
an exhausted key spend again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from ..auth import KeyInfo
from ..errors import APIError
from ..runtime import Runtime
from .budgetlease import BudgetLeases, Ledger, Shared
from .meter import prompt_estimate

log = logging.getLogger("xrouter.budgets")

DEFAULT_MAX_OUTPUT = 4096  # output tokens reserved for a request that sets no maximum
RECONCILE_SECONDS = 5.0
_MAX_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
_UNAVAILABLE = "Budget enforcement is unavailable (the key's spend cannot be read)"


@dataclass(slots=True)
class Hold:
    """One request's reservation."""

    key_name: str
    account: str
    amount: float
    remote: bool  # held in Redis (else in this process)
    leased: bool = False  # admitted into this replica's lease of the budget


def want(rt: Runtime, model: str, kind: str, payload: dict[str, Any], body_bytes: int) -> tuple[float, int]:
    """An upper bound of the request's cost (USD) and of its tokens."""
    prompt = prompt_estimate(body_bytes)
    out = 0 if kind == "embeddings" else DEFAULT_MAX_OUTPUT
    if out:
        for name in _MAX_FIELDS:
            value = payload.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                out = value
                break
    price_in, price_out = rt.bound_rates(model)
    return (prompt * price_in + out * price_out) / 1e6, prompt + out


class BudgetGuard:
    def __init__(self, shared: Shared, ledger: Ledger, ttl_ms: int) -> None:
        self.shared = shared
        self.ledger = ledger
        self.ttl_ms = str(ttl_ms)
        self.local: dict[str, float] = {}  # account -> reserved in this process
        self._unsent: dict[tuple[str, str], float] = {}  # (key, account) -> cost Redis has not taken
        self._loop: asyncio.Task[None] | None = None
        self.leases = BudgetLeases(shared, ledger, self.ttl_ms)

    def _acct(self, name: str, account: str) -> str:
        return f"{self.shared.base(name)}:budget:{account}"

    async def reserve(self, key: KeyInfo, request_id: str, amount: float) -> Hold:
        """Reserve ``amount`` against the key's budget, or raise 429 (503: see the fail modes)."""
        budget = key.limits.budget_usd
        assert budget is not None
        name = key.name
        account = self.ledger.account(name)
        shared = self.shared
        if shared.scripts is not None and shared.redis_up:
            if self._loop is None or self._loop.done():
                self._loop = asyncio.get_running_loop().create_task(self._reconcile_loop())
            acct = self._acct(name, account)
            if self.leases.admit(acct, name, account, budget, amount):
                return Hold(name, account, amount, True, leased=True)
            args: list[str | int] = [
                repr(budget),
                repr(amount),
                request_id,
                self.ttl_ms,
                self.ledger.expiry_ms(name),
            ]
            try:
                verdict, _, _ = await shared.scripts.call("budget_reserve", [acct], args)
                if verdict == b"-1":
                    recorded = self.ledger.recorded(name, account)
                    if recorded is None:
                        raise APIError(503, _UNAVAILABLE, code="budget_unavailable")
                    load: list[str | int] = [repr(recorded), self.ledger.expiry_ms(name)]
                    await shared.scripts.call("budget_load", [acct], load)
                    verdict, _, _ = await shared.scripts.call("budget_reserve", [acct], args)
            except (RedisError, OSError) as exc:
                shared._down(exc)
            else:
                if verdict != b"0":
                    raise _exhausted()
                return Hold(name, account, amount, True)
        if shared.configured and shared.fail_mode == "closed":
            raise APIError(503, "Rate limiting is unavailable (Redis is down)", code="limits_unavailable")
        recorded = self.ledger.recorded(name, account)
        if recorded is None:
            raise APIError(503, _UNAVAILABLE, code="budget_unavailable")
        if recorded + self.local.get(account, 0.0) >= budget:
            raise _exhausted()
        self.local[account] = self.local.get(account, 0.0) + amount
        return Hold(name, account, amount, False)

    def settle(self, hold: Hold, request_id: str, cost: float) -> None:
        """Free the reservation and count the cost (the usage row counts it locally)."""
        shared = self.shared
        if hold.leased:
            self.leases.settle(self._acct(hold.key_name, hold.account), hold.amount, cost)
            return
        if not hold.remote:
            left = self.local.get(hold.account, 0.0) - hold.amount
            if left > 1e-12:
                self.local[hold.account] = left
            else:
                self.local.pop(hold.account, None)
        if shared.scripts is None:
            return
        if hold.remote and shared.redis_up:
            self._send(hold.key_name, hold.account, request_id, cost)
        elif cost:  # Redis learns it when it is back (a remote hold expires by its TTL)
            k = (hold.key_name, hold.account)
            self._unsent[k] = self._unsent.get(k, 0.0) + cost

    def charge(self, key: KeyInfo, cost: float) -> None:
        """Count a cost nothing reserved (a background response's result, metered when
        it is fetched) in the shared account, as a settle with no reservation does."""
        if key.limits.budget_usd is None or not cost:
            return
        remote = self.shared.scripts is not None and self.shared.redis_up
        self.settle(Hold(key.name, self.ledger.account(key.name), 0.0, remote), "", cost)

    def _send(self, name: str, account: str, request_id: str, cost: float) -> None:
        assert self.shared.scripts is not None
        fut = self.shared.scripts.call("budget_settle", [self._acct(name, account)], [request_id, repr(cost)])

        def done(f: asyncio.Future[object]) -> None:
            exc = None if f.cancelled() else f.exception()
            if (f.cancelled() or exc is not None) and cost:
                self._unsent[(name, account)] = self._unsent.get((name, account), 0.0) + cost

        fut.add_done_callback(done)

    def flush(self) -> None:
        """Redis is back: send the costs it missed."""
        pending, self._unsent = self._unsent, {}
        for (name, account), cost in pending.items():
            self._send(name, account, "", cost)
        self.leases.flush()

    async def reconcile(self) -> None:
        """Load every budget account from PostgreSQL's figures, or raise Redis's to them."""
        shared = self.shared
        if shared.scripts is None or not shared.redis_up:
            return
        calls = []
        for name, account in self.ledger.accounts().items():
            recorded = self.ledger.recorded(name, account)
            if recorded is not None:
                load: list[str | int] = [repr(recorded), self.ledger.expiry_ms(name)]
                calls.append(shared.scripts.call("budget_load", [self._acct(name, account)], load))
        if calls:
            results = await asyncio.gather(*calls, return_exceptions=True)
            for r in results:
                if isinstance(r, (RedisError, OSError)):
                    shared._down(r)
                    break

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(RECONCILE_SECONDS)
            try:
                await self.reconcile()
            except Exception:  # keep reconciling whatever one round met
                log.exception("budget reconcile failed")

    async def standing(self, key: KeyInfo) -> tuple[float, float] | None:
        """(spent, reserved) of the key's current account, as the budget check sees it."""
        account = self.ledger.account(key.name)
        shared = self.shared
        if shared.scripts is not None and shared.redis_up:
            with contextlib.suppress(RedisError, OSError):
                spent, reserved = await shared.scripts.call(
                    "budget_peek", [self._acct(key.name, account)], []
                )
                if spent:
                    return float(spent), float(reserved)
        recorded = self.ledger.recorded(key.name, account)
        return None if recorded is None else (recorded, self.local.get(account, 0.0))

    async def aclose(self) -> None:
        await self.leases.aclose()
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop


def _exhausted() -> APIError:
    return APIError(429, "Budget exhausted for this key", code="budget_limit_exceeded")
