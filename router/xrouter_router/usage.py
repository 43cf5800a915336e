"""Usage recording: one row per request, written to PostgreSQL in batches off the
hot path.

``record`` only appends to an in-memory queue. A background task writes batches
(COPY into a temporary table, then ``INSERT ... ON CONFLICT (request_id) DO NOTHING``,
so a row written twice is stored once). When a batch cannot be written it is
appended to a spill file (JSON lines, fsynced) and replayed when PostgreSQL is back;
files are claimed by an atomic rename, so concurrent replays by several workers
cannot lose them. On shutdown the queue is flushed, or spilled.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import tempfile
import time
import uuid
from collections import deque
from dataclasses import astuple, dataclass
from pathlib import Path

import asyncpg
import orjson

from . import db
from .metrics import Metrics

log = logging.getLogger("xrouter.usage")

_COLUMNS = (
    "request_id",
    "key_name",
    "model",
    "provider",
    "upstream_model",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_usd",
    "status",
    "latency_ms",
    "created_at",
)
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)
SPEND_REFRESH_SECONDS = 5.0


@dataclass(slots=True)
class UsageRow:
    request_id: str
    key_name: str
    model: str
    provider: str
    upstream_model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float
    status: int
    latency_ms: float
    created_at: float  # unix time


def _record(row: UsageRow) -> tuple[object, ...]:
    # Field by field: ``dataclasses.astuple`` deep-copies every value, which cost more
    # than the rest of the batch write.
    return (
        row.request_id,
        row.key_name,
        row.model,
        row.provider,
        row.upstream_model,
        row.prompt_tokens,
        row.completion_tokens,
        row.cached_tokens,
        row.cost_usd,
        row.status,
        row.latency_ms,
        dt.datetime.fromtimestamp(row.created_at, dt.UTC),
    )


class UsageRecorder:
    def __init__(
        self,
        dsn: str | None,
        metrics: Metrics,
        spill_dir: str,
        batch_size: int = 500,
        flush_interval: float = 1.0,
    ) -> None:
        self.dsn = dsn
        self.metrics = metrics
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.pool: asyncpg.Pool | None = None
        self.db_up = False
        self.queue: deque[UsageRow] = deque()
        self.spill_dir = self._spill_dir(spill_dir) if dsn else None
        self.spill_rows = self._count_spilled()
        self.pending_cost: dict[str, float] = {}
        self.db_spent: dict[str, float] = {}
        self.budget_keys: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._spend_checked = 0.0
        self._update_gauge()

    @staticmethod
    def _spill_dir(path: str) -> Path:
        p = Path(path)
        try:
            p.mkdir(parents=True, exist_ok=True)
            probe = p / f".probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
            return p
        except OSError:
            fallback = Path(tempfile.gettempdir()) / "xrouter-spill"
            fallback.mkdir(parents=True, exist_ok=True)
            log.warning("spill dir %s is not writable, using %s", path, fallback)
            return fallback

    def _count_spilled(self) -> int:
        if self.spill_dir is None:
            return 0
        return sum(f.read_bytes().count(b"\n") for f in self.spill_dir.glob("*.jsonl"))

    def _update_gauge(self) -> None:
        self.metrics.usage_buffer_rows.set(len(self.queue) + self.spill_rows)

    @property
    def enabled(self) -> bool:
        return self.dsn is not None

    def spent(self, key_name: str) -> float:
        return self.db_spent.get(key_name, 0.0) + self.pending_cost.get(key_name, 0.0)

    def record(self, row: UsageRow) -> None:
        if row.cost_usd:
            self.pending_cost[row.key_name] = self.pending_cost.get(row.key_name, 0.0) + row.cost_usd
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
        self.pool = pool
        self._set_up(True)
        return True

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
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # keep the writer alive whatever happens
                log.exception("usage flush failed")

    async def flush(self) -> None:
        """Write what is queued (spilling on failure) and replay spill files."""
        reachable = await self._reachable() if self.queue or self.spill_rows else self.db_up
        while self.queue:
            n = min(len(self.queue), self.batch_size)
            batch = [self.queue.popleft() for _ in range(n)]
            if not (reachable and await self._write(batch)):
                reachable = False
                self._spill(batch)
            self._update_gauge()
        if self.spill_rows and reachable:
            await self._replay()
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

    async def _write(self, batch: list[UsageRow]) -> bool:
        assert self.pool is not None
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS xrouter_usage_stage"
                    " (LIKE xrouter_usage INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                await conn.copy_records_to_table(
                    "xrouter_usage_stage", records=[_record(r) for r in batch], columns=_COLUMNS
                )
                await conn.execute(
                    "INSERT INTO xrouter_usage SELECT * FROM xrouter_usage_stage ON CONFLICT DO NOTHING"
                )
        except _DB_ERRORS as exc:
            self._set_up(False, exc)
            return False
        self._set_up(True)
        self.metrics.usage_rows_written.inc(len(batch))
        for row in batch:
            if row.cost_usd:
                left = self.pending_cost.get(row.key_name, 0.0) - row.cost_usd
                self.pending_cost[row.key_name] = max(0.0, left)
                self.db_spent[row.key_name] = self.db_spent.get(row.key_name, 0.0) + row.cost_usd
        return True

    def _spill(self, batch: list[UsageRow]) -> None:
        assert self.spill_dir is not None
        path = self.spill_dir / f"usage-{os.getpid()}.jsonl"
        data = b"".join(orjson.dumps(astuple(r)) + b"\n" for r in batch)
        with open(path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.spill_rows += len(batch)

    async def _replay(self) -> None:
        assert self.spill_dir is not None
        mine = f"replay-{os.getpid()}-"
        for path in sorted(self.spill_dir.glob("*.jsonl")):
            if not path.name.startswith(mine):
                # Claim it by an atomic rename: another worker may be replaying it. Files
                # claimed by a process that died are taken over (rows are idempotent).
                if path.name.startswith("replay-") and _alive(path.name.split("-")[1]):
                    continue
                claimed = path.with_name(f"{mine}{uuid.uuid4().hex[:8]}-{path.name}")
                try:
                    path.rename(claimed)
                except FileNotFoundError:
                    continue
                path = claimed
            if not await self._replay_file(path):
                return

    async def _replay_file(self, path: Path) -> bool:
        rows = [UsageRow(*orjson.loads(line)) for line in path.read_bytes().splitlines() if line.strip()]
        for i in range(0, len(rows), self.batch_size):
            if not await self._write(rows[i : i + self.batch_size]):
                return False  # keep the claimed file; the next round retries it whole
        path.unlink(missing_ok=True)
        self.spill_rows = max(0, self.spill_rows - len(rows))
        self._update_gauge()
        log.info("replayed %d spilled usage rows", len(rows))
        return True

    async def _refresh_spend(self) -> None:
        assert self.pool is not None
        self._spend_checked = time.monotonic()
        try:
            rows = await self.pool.fetch(
                "SELECT key_name, sum(cost_usd) AS spent FROM xrouter_usage"
                " WHERE key_name = ANY($1::text[]) GROUP BY key_name",
                sorted(self.budget_keys),
            )
        except _DB_ERRORS as exc:
            self._set_up(False, exc)
            return
        self.db_spent.update({r["key_name"]: float(r["spent"]) for r in rows})

    async def aclose(self) -> None:
        """Stop the writer, then flush everything (or spill it)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.dsn is not None:
            await self.flush()
        if self.pool is not None:
            with contextlib.suppress(*_DB_ERRORS):
                await asyncio.wait_for(self.pool.close(), 5)


def _alive(pid: str) -> bool:
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
