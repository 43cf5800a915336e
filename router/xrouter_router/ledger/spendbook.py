"""Spend per budget account, as the usage recorder knows it: what PostgreSQL has summed
(refreshed every ``SPEND_REFRESH_SECONDS``) plus this process's rows not written yet.
Mixed into ``UsageRecorder``; read by the budget guard (``budgetguard.Ledger``)."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from . import db
from .budgets import NONE, Periods

_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, db.NoWritableHost, OSError, asyncio.TimeoutError)
SPEND_REFRESH_SECONDS = 5.0
_KEEP_AFTER_WINDOW = 86400.0  # a windowed account stays in Redis one day past its end


class SpendBook:
    """Provided by ``UsageRecorder``: ``dsn``, ``pool``, ``_wake`` and ``_set_up``."""

    dsn: str | None
    pool: asyncpg.Pool | None
    _wake: asyncio.Event

    def _init_spend(self) -> None:
        # Spend by budget account (budgets.py): the key name, or name@period-start.
        self.pending_cost: dict[str, float] = {}
        self.db_spent: dict[str, float] = {}
        # Keys whose spend is tracked (a budget or a budget period) -> budgetPeriod.
        self.budget_keys: dict[str, str] = {}
        self.periods = Periods()
        self._spend_checked = 0.0
        # Keys whose spend PostgreSQL has told this process (at the last refresh): the
        # others' spend is unknown, not zero, until the next one.
        self._spend_read: set[str] = set()

    def _set_up(self, up: bool, exc: BaseException | None = None) -> None:
        raise NotImplementedError

    def set_budget_keys(self, keys: dict[str, str]) -> None:
        """Track these keys' spend (name -> budgetPeriod). A key whose period changed
        has a new account: its spend is read from the database at the next flush,
        not up to SPEND_REFRESH_SECONDS later."""
        changed = keys != self.budget_keys
        self.budget_keys = keys
        if changed and self.pool is not None:
            self._spend_checked = -SPEND_REFRESH_SECONDS
            self._wake.set()

    def _account(self, key_name: str, when: float) -> str:
        return self.periods.account(key_name, self.budget_keys.get(key_name), when)

    def account(self, key_name: str, when: float | None = None) -> str:
        """The key's budget account at ``when`` (now)."""
        return self._account(key_name, time.time() if when is None else when)

    def spent(self, key_name: str) -> float:
        """The key's spend in its current budget period (lifetime without one)."""
        account = self._account(key_name, time.time())
        return self.db_spent.get(account, 0.0) + self.pending_cost.get(account, 0.0)

    def recorded(self, key_name: str, account: str) -> float | None:
        """The account's spend as this process knows it; None while PostgreSQL has not
        been read for this key (down since start-up)."""
        if self.dsn is not None and key_name not in self._spend_read:
            return None
        return self.db_spent.get(account, 0.0) + self.pending_cost.get(account, 0.0)

    def expiry_ms(self, key_name: str) -> int:
        """When the key's current account may leave Redis (unix ms); 0: never."""
        period = self.budget_keys.get(key_name, NONE)
        if period == NONE:
            return 0
        return int((self.periods.window(period, time.time()).end + _KEEP_AFTER_WINDOW) * 1000)

    def accounts(self) -> dict[str, str]:
        """Key name -> current account, of every tracked key."""
        now = time.time()
        return {name: self._account(name, now) for name in self.budget_keys}

    async def _refresh_spend(self) -> None:
        assert self.pool is not None
        self._spend_checked = time.monotonic()
        now = time.time()
        names = sorted(self.budget_keys)
        since = [self.periods.since(self.budget_keys[n], now) for n in names]
        try:
            rows = await self.pool.fetch(
                "SELECT k.name AS key_name, sum(u.cost_usd) AS spent"
                " FROM unnest($1::text[], $2::timestamptz[]) AS k(name, since)"
                " JOIN xrouter_usage u ON u.key_name = k.name"
                " AND (k.since IS NULL OR u.created_at >= k.since)"
                " GROUP BY k.name",
                names,
                since,
            )
        except _DB_ERRORS as exc:
            self._set_up(False, exc)
            return
        found = {r["key_name"]: float(r["spent"]) for r in rows}
        # Only the current accounts: a key with no rows in its period has spent nothing.
        self.db_spent = {self._account(n, now): found.get(n, 0.0) for n in names}
        self._spend_read = set(names)
