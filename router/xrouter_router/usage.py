"""Usage recording: one row per request, written to PostgreSQL in batches off the hot path.

``record`` only appends to an in-memory queue. A background task writes batches
(COPY into a temporary table, then ``INSERT ... ON CONFLICT (request_id) DO NOTHING``,
so a row written twice is stored once). A batch that cannot be written is spilled:
to a Redis stream shared by every replica when Redis is configured and answers
(``spillstream.py``; it survives the pod), else to a local file (``spill.py``). Any
replica replays the stream, and each replays its own files, once PostgreSQL is back.
On shutdown the writer finishes the batch it is writing, then the queue is flushed
or spilled; a write still stuck after ``WRITE_DRAIN_SECONDS`` is cancelled and its
batch goes to disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from . import db
from .budgets import Periods
from .metrics import Metrics
from .spill import DiskSpill, encode
from .spillstream import STREAM, StreamSpill
from .usagerow import COLUMNS, UsageRow, record

__all__ = ["SPEND_REFRESH_SECONDS", "UsageRecorder", "UsageRow"]

log = logging.getLogger("xrouter.usage")

_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, db.NoWritableHost, OSError, asyncio.TimeoutError)
SPEND_REFRESH_SECONDS = 5.0
WRITE_DRAIN_SECONDS = 10.0  # on shutdown, how long the batch being written may still take
STREAM_CHECK_SECONDS = 1.0  # how often a replica looks for rows in the shared stream
POOL_SWAP_RETRY_SECONDS = 10.0  # after a database.url rotation, how often to try the new URL
STREAM_BATCHES_PER_ROUND = 20  # stream rows replayed per round, in batches (then new rows go first)


class UsageRecorder:
    """``redis``, when given, is where failed batches go first (shared by replicas, so
    they survive this pod); the recorder uses it but does not close it."""

    def __init__(
        self,
        dsn: str | None,
        metrics: Metrics,
        spill_dir: str,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        redis: Redis | None = None,
    ) -> None:
        self.dsn = dsn
        self.metrics = metrics
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.pool: asyncpg.Pool | None = None
        self.db_up = False
        self.queue: deque[UsageRow] = deque()
        self.disk = DiskSpill(spill_dir, metrics) if dsn else None
        self.stream = StreamSpill(redis) if dsn and redis is not None else None
        self.disk_rows = self.disk.count() if self.disk else 0
        self.stream_rows = 0  # rows in the shared stream (any replica's), as last seen
        # Spend by budget account (budgets.py): the key name, or name@period-start.
        self.pending_cost: dict[str, float] = {}
        self.db_spent: dict[str, float] = {}
        # Keys whose spend is tracked (a budget or a budget period) -> budgetPeriod.
        self.budget_keys: dict[str, str] = {}
        self.periods = Periods()
        self._streamed_cost: dict[str, float] = {}  # part of pending_cost now in the stream
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._pool_dsn = dsn  # the URL self.pool connects to
        self._swap_tried = -POOL_SWAP_RETRY_SECONDS
        self._spend_checked = 0.0
        self._stream_checked = -STREAM_CHECK_SECONDS
        self._update_gauge()

    def set_dsn(self, dsn: str | None) -> None:
        """Write to this database URL from now on (``database.url`` was rotated in its
        Secret). The writer switches pools between batches; until the new URL connects
        it keeps the old pool, whose sessions outlive a password change."""
        if dsn == self.dsn:
            return
        if dsn is None or self.dsn is None:
            log.warning("database.url was added or removed; that takes effect on restart")
            return
        self.dsn = dsn
        self._wake.set()

    def set_redis(self, redis: Redis | None) -> None:
        """Spill to this Redis client from now on (the limiter's, after a rotation)."""
        self.stream = StreamSpill(redis) if self.dsn and redis is not None else None

    @property
    def spill_dir(self) -> Path | None:
        return self.disk.dir if self.disk else None

    @property
    def spill_rows(self) -> int:
        """Rows spilled and not yet in PostgreSQL: local files plus the shared stream."""
        return self.disk_rows + self.stream_rows

    def _update_gauge(self) -> None:
        self.metrics.usage_buffer_rows.set(len(self.queue) + self.spill_rows)

    @property
    def enabled(self) -> bool:
        return self.dsn is not None

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

    def spent(self, key_name: str) -> float:
        """The key's spend in its current budget period (lifetime without one)."""
        account = self._account(key_name, time.time())
        return self.db_spent.get(account, 0.0) + self.pending_cost.get(account, 0.0)

    def record(self, row: UsageRow) -> None:
        if row.cost_usd:
            account = self._account(row.key_name, row.created_at)
            self.pending_cost[account] = self.pending_cost.get(account, 0.0) + row.cost_usd
        if self.dsn is None:
            return
        self.queue.append(row)
        self.metrics.usage_buffer_rows.inc()
        if len(self.queue) >= self.batch_size:
            self._wake.set()

    async def start(self) -> None:
        if self.dsn is None:
            return
        await self._connect()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _connect(self) -> bool:
        if self.pool is not None:
            return True
        assert self.dsn is not None
        try:
            pool = await db.connect(self.dsn)
            await db.migrate(pool)
        except _DB_ERRORS as exc:
            self._set_up(False, exc)
            return False
        self.pool, self._pool_dsn = pool, self.dsn
        self._set_up(True)
        return True

    async def _swap_pool(self) -> None:
        if time.monotonic() - self._swap_tried < POOL_SWAP_RETRY_SECONDS:
            return
        self._swap_tried = time.monotonic()
        assert self.dsn is not None and self.pool is not None
        try:
            pool = await db.connect(self.dsn)
            await db.migrate(pool)
        except _DB_ERRORS as exc:
            log.warning(
                "the new database.url does not connect yet; still on the old one: %s", type(exc).__name__
            )
            return
        old, self.pool, self._pool_dsn = self.pool, pool, self.dsn
        log.info("database.url changed; writing through the new one")
        with contextlib.suppress(*_DB_ERRORS):
            await asyncio.wait_for(old.close(), 5)

    def _set_up(self, up: bool, exc: BaseException | None = None) -> None:
        if up != self.db_up:
            if up:
                log.info("postgres is reachable; usage rows are being written")
            else:
                log.warning(
                    "postgres unavailable, usage rows are buffered and spilled: %s",
                    type(exc).__name__ if exc else "",
                )
        self.db_up = up
        self.metrics.database_up.set(1 if up else 0)

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # keep the writer alive whatever happens
                log.exception("usage flush failed")

    async def flush(self) -> None:
        """Write what is queued (spilling on failure) and replay spilled rows."""
        if self.pool is not None and self._pool_dsn != self.dsn:
            await self._swap_pool()
        if self.stream is not None and time.monotonic() - self._stream_checked >= STREAM_CHECK_SECONDS:
            await self._check_stream()
        reachable = await self._reachable() if self.queue or self.spill_rows else self.db_up
        while self.queue:
            n = min(len(self.queue), self.batch_size)
            batch = [self.queue.popleft() for _ in range(n)]
            try:
                if not (reachable and await self._write(batch)):
                    reachable = False
                    await self._spill(batch)
            except asyncio.CancelledError:
                # Cancelled mid-write (a shutdown past its deadline): the batch is no
                # longer queued, so it must land somewhere. Disk needs no await.
                self._to_disk(batch)
                raise
            except Exception as exc:
                # Neither written nor spilled (a disk that refuses): back to the queue's head.
                self.queue.extendleft(reversed(batch))
                log.error("usage rows neither written nor spilled (%s); kept", type(exc).__name__)
                break
            self._update_gauge()
        if reachable and not self._closing:  # replays wait for the next start, not the drain
            if self.disk_rows:
                await self._replay()
            if self.stream_rows:
                await self._replay_stream()
        if self.db_up and self.budget_keys and time.monotonic() - self._spend_checked > SPEND_REFRESH_SECONDS:
            await self._refresh_spend()

    async def _reachable(self) -> bool:
        if self.pool is None:
            return await self._connect()
        if self.db_up:
            return True
        try:
            await asyncio.wait_for(self.pool.fetchval("SELECT 1"), db.CONNECT_TIMEOUT)
        except _DB_ERRORS as exc:
            self._set_up(False, exc)
            return False
        self._set_up(True)
        return True

    async def _write(self, batch: list[UsageRow], own: bool = True) -> bool:
        """``own``: rows this process recorded (their cost moves from pending to spent)."""
        assert self.pool is not None
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS xrouter_usage_stage"
                    " (LIKE xrouter_usage INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                await conn.copy_records_to_table(
                    "xrouter_usage_stage", records=[record(r) for r in batch], columns=COLUMNS
                )
                await conn.execute(
                    "INSERT INTO xrouter_usage SELECT * FROM xrouter_usage_stage ON CONFLICT DO NOTHING"
                )
        except _DB_ERRORS as exc:
            self._set_up(False, exc)
            return False
        except Exception as exc:
            # Outside asyncpg's documented errors: not written, so spilled or kept. The
            # type only is logged: a driver's message may quote the rows or the URL.
            log.error("usage write failed unexpectedly (%s); the batch is kept", type(exc).__name__)
            return False
        self._set_up(True)
        self.metrics.usage_rows_written.inc(len(batch))
        for row in batch:
            if row.cost_usd:
                account = self._account(row.key_name, row.created_at)
                if own:
                    left = self.pending_cost.get(account, 0.0) - row.cost_usd
                    self.pending_cost[account] = max(0.0, left)
                self.db_spent[account] = self.db_spent.get(account, 0.0) + row.cost_usd
        return True

    async def _spill(self, batch: list[UsageRow]) -> None:
        if self.stream is not None and await self.stream.add([encode(r) for r in batch]):
            self.stream_rows += len(batch)
            for row in batch:
                if row.cost_usd:
                    name = self._account(row.key_name, row.created_at)
                    self._streamed_cost[name] = self._streamed_cost.get(name, 0.0) + row.cost_usd
            return
        self._to_disk(batch)

    def _to_disk(self, batch: list[UsageRow]) -> None:
        assert self.disk is not None
        self.disk.append(batch)
        self.disk_rows += len(batch)

    async def _replay(self) -> None:
        assert self.disk is not None
        for path in self.disk.claim():
            if not await self._replay_file(path):
                return

    async def _replay_file(self, path: Path) -> bool:
        assert self.disk is not None
        rows, bad = self.disk.read(path)
        for i in range(0, len(rows), self.batch_size):
            if not await self._write(rows[i : i + self.batch_size]):
                return False  # keep the claimed file; the next round retries it whole
        if bad:
            self.disk.quarantine(bad, path.name)
        path.unlink(missing_ok=True)
        self.disk_rows = max(0, self.disk_rows - len(rows) - len(bad))
        self._update_gauge()
        log.info("replayed %d spilled usage rows", len(rows))
        return True

    async def _check_stream(self) -> None:
        assert self.stream is not None
        self._stream_checked = time.monotonic()
        n = await self.stream.length()
        if n is None:
            return
        self.stream_rows = n
        if n == 0 and self._streamed_cost:
            # Whoever replayed our rows, they are in PostgreSQL now: the spend refresh
            # counts them, so they leave this process's pending cost.
            for name, cost in self._streamed_cost.items():
                self.pending_cost[name] = max(0.0, self.pending_cost.get(name, 0.0) - cost)
            self._streamed_cost.clear()
        self._update_gauge()

    async def _replay_stream(self) -> None:
        assert self.stream is not None and self.disk is not None
        if not await self.stream.lock():
            return  # another replica is replaying it
        replayed = 0
        try:
            for _ in range(STREAM_BATCHES_PER_ROUND):
                entries = await self.stream.take(self.batch_size)
                if not entries:
                    break
                rows = [row for _, row, _ in entries if row is not None]
                if rows and not await self._write(rows, own=False):
                    break
                bad = [raw for _, row, raw in entries if row is None]
                if bad:
                    self.disk.quarantine(bad, STREAM)
                if not await self.stream.drop([ident for ident, _, _ in entries]):
                    break
                replayed += len(rows)
                self.stream_rows = max(0, self.stream_rows - len(entries))
                self._update_gauge()
        finally:
            await self.stream.unlock()
        if replayed:
            log.info("replayed %d usage rows from the shared spill stream", replayed)
        await self._check_stream()

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

    async def aclose(self) -> None:
        """Let the writer finish the batch it is writing, then flush everything that is
        left (or spill it)."""
        self._closing = True
        if self._task is not None:
            self._wake.set()
            try:
                await asyncio.wait_for(self._task, WRITE_DRAIN_SECONDS)
            except TimeoutError:  # wait_for cancelled it; its batch went to disk
                log.warning("usage write still running %.0f s into shutdown; spilled", WRITE_DRAIN_SECONDS)
        if self.dsn is not None:
            await self.flush()
        if self.pool is not None:
            with contextlib.suppress(*_DB_ERRORS):
                await asyncio.wait_for(self.pool.close(), 5)
