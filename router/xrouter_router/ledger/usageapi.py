"""``GET /v1/usage``: the calling key's spend, what its requests in flight have
reserved, and what is left of its budget in the current budget period. Authenticated
with the caller's own key; it shows that key only.

A budgeted key's figures are the ones its budget check uses (Redis's shared account,
or this process's view). A key without a budget is summed in PostgreSQL, at most once
per ``SUM_CACHE_SECONDS`` per key and one query at a time per process: the query runs
on the usage writer's small pool, which callers polling this endpoint must not starve."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..auth import KeyInfo, bearer
from ..endpoints import json_response
from ..errors import APIError
from ..state import State
from .budgets import NONE


def _iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).isoformat().replace("+00:00", "Z")


SUM_CACHE_SECONDS = 10.0


class UsageAPI:
    def __init__(self, state: State) -> None:
        self.state = state
        self._sums: dict[tuple[str, str], tuple[float, float | None]] = {}  # -> (when, spend)
        self._one = asyncio.Lock()

    async def get(self, request: Request) -> Response:
        state = self.state
        raw = bearer(request.scope["headers"])
        key = state.keys.lookup(raw) if raw else None
        if key is None:
            raise APIError(401, "Invalid or missing API key", code="invalid_api_key")
        return json_response(200, await self.report(key))

    async def report(self, key: KeyInfo) -> dict[str, Any]:
        usage, limits = self.state.usage, key.limits
        period, now = limits.budget_period, time.time()
        guard = self.state.limiter.budget
        reserved: float | None = 0.0
        if limits.budget_usd is not None and guard is not None:
            standing = await guard.standing(key)  # the figures the budget check uses
            spent, reserved = standing if standing is not None else (None, None)
        elif key.name in usage.budget_keys:
            spent = usage.spent(key.name)
        else:
            spent = await self._database_spend(key.name, period, now)
        body: dict[str, Any] = {
            "object": "usage",
            "key": key.name,
            "budgetPeriod": period,
            "periodStart": None,
            "periodEnd": None,
            "spentUsd": None if spent is None else round(spent, 9),
            "reservedUsd": None if reserved is None else round(reserved, 9),
            "budgetUsd": limits.budget_usd,
            "remainingUsd": None,
        }
        if period != NONE:
            window = usage.periods.window(period, now)
            body["periodStart"], body["periodEnd"] = _iso(window.start), _iso(window.end)
        if limits.budget_usd is not None and spent is not None:
            body["remainingUsd"] = round(max(0.0, limits.budget_usd - spent - (reserved or 0.0)), 9)
        return body

    async def _database_spend(self, key_name: str, period: str, now: float) -> float | None:
        """Spend of a key without a tracked budget, summed in the database (plus what
        this process has not written yet); only this process's spend without a database."""
        usage = self.state.usage
        pending = usage.pending_cost.get(key_name, 0.0)
        if usage.pool is None:
            return pending if not usage.enabled else None
        slot = (key_name, period)
        async with self._one:
            cached = self._sums.get(slot)
            if cached is None or time.monotonic() - cached[0] > SUM_CACHE_SECONDS:
                if len(self._sums) > 10_000:
                    self._sums.clear()
                cached = self._sums[slot] = (time.monotonic(), await _sum(self.state, key_name, period, now))
        return None if cached[1] is None else cached[1] + pending


async def _sum(state: State, key_name: str, period: str, now: float) -> float | None:
    usage = state.usage
    assert usage.pool is not None
    since = usage.periods.since(period, now)
    try:
        value = await usage.pool.fetchval(
            "SELECT coalesce(sum(cost_usd), 0) FROM xrouter_usage"
            " WHERE key_name = $1 AND ($2::timestamptz IS NULL OR created_at >= $2)",
            key_name,
            since,
        )
    except Exception:  # the database may be down: say the figure is unknown
        return None
    return float(value)
