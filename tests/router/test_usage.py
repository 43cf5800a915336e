"""Usage rows in PostgreSQL: one per request, batched; a 30 s outage under load
loses nothing and duplicates nothing; spill files replay idempotently; budgets."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import pytest
from xrouter_router.ledger.usage import UsageRecorder, UsageRow
from xrouter_router.metrics import Metrics

from .conftest import KEY, StartRouter, client, db_config
from .servers import FakeProvider, Postgres, Router

MSG: Any = [{"role": "user", "content": "count me"}]


def _wait_drained(router: Router, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while router.metric("xrouter_usage_buffer_rows") > 0:
        assert time.monotonic() < deadline, "usage buffer did not drain"
        time.sleep(0.2)


def test_rows_written_with_tokens_and_cost(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    router = start_router(db_config(provider.url, tmp_path), {"TEST_DATABASE_URL": pg.dsn(name)})
    raw = client(router).chat.completions.with_raw_response.create(model="gpt", messages=MSG)
    rid = raw.headers["x-request-id"]
    list(client(router).chat.completions.create(model="gpt", messages=MSG, stream=True))
    _wait_drained(router)
    time.sleep(0.3)
    row = pg.sql(
        f"SELECT key_name, model, provider, upstream_model, completion_tokens, status, cost_usd > 0"
        f" FROM xrouter_usage WHERE request_id = '{rid}'",
        name,
    )
    assert row == "alpha|gpt|fake|gpt-up|2|200|t"
    assert pg.sql("SELECT count(*) FROM xrouter_usage WHERE completion_tokens = 2", name) == "2"
    assert router.metric("xrouter_usage_rows_written_total") == 2
    assert httpx.get(router.url + "/ready").json()["database"] == "up"


@pytest.mark.slow
def test_postgres_outage_30s_under_load(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    router = start_router(db_config(provider.url, tmp_path), {"TEST_DATABASE_URL": pg.dsn(name)})
    served: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(headers={"authorization": f"Bearer {KEY}"}) as http:
            while not stop.is_set():
                r = http.post(router.url + "/v1/chat/completions", json={"model": "echo", "messages": MSG})
                assert r.status_code == 200
                served.append(r.headers["x-request-id"])
                time.sleep(0.01)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(3)
    pg.stop()
    outage_began = len(served)
    time.sleep(5)
    ready = httpx.get(router.url + "/ready").json()
    assert ready["status"] == "degraded" and ready["database"].startswith("down")
    assert router.metric("xrouter_database_up") == 0
    time.sleep(25)
    assert router.metric("xrouter_usage_buffer_rows") > 0
    assert list((tmp_path / "spill").glob("usage-*.jsonl")), "rows were spilled to disk"
    pg.start()
    outage_ended = len(served)
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join()
    assert len(served) - outage_began > 500  # the router kept serving through the outage
    _wait_drained(router)

    def stored() -> list[str]:
        return pg.sql("SELECT request_id FROM xrouter_usage", name).split()

    # Every served request's row, each once. Wait for it rather than sample once: the buffer
    # gauge reaching 0 and the last COPY becoming visible are not one instant on a busy machine.
    deadline = time.monotonic() + 20
    while len(stored()) < len(served) and time.monotonic() < deadline:
        time.sleep(0.5)
    ids = stored()
    count, distinct = len(ids), len(set(ids))
    missing = set(served) - set(ids)
    spill = [(f.name, f.stat().st_size) for f in (tmp_path / "spill").iterdir()]
    # Where the lost rows sit in the traffic (outage from/to), and what the router said.
    where = sorted(i for i, rid in enumerate(served) if rid in missing)
    said = [line for line in router.log().splitlines() if '"xrouter.usage"' in line or '"error"' in line]
    assert count == distinct == len(served), (
        f"{len(missing)} rows missing at {where[:3]}..{where[-3:]} (outage {outage_began}..{outage_ended}"
        f" of {len(served)}); spill dir: {spill}; router log: {said[-20:]};"
        f" postgres log: {pg.log()[-3000:]}"
    )
    assert not missing
    assert router.metric("xrouter_database_up") == 1


async def test_spill_replays_idempotently(tmp_path: Path, database: tuple[Postgres, str]) -> None:
    pg, name = database
    spill = tmp_path / "spill"
    rec = UsageRecorder("postgresql://xrouter@127.0.0.1:1/none", Metrics(), str(spill), flush_interval=0.1)
    rows = [UsageRow(f"r{i}", "k", "m", "p", "u", 1, 2, 0, 0.5, 200, 1.0, time.time()) for i in range(10)]
    for r in rows:
        rec.record(r)
    await rec.flush()  # the database is unreachable: everything goes to the spill file
    [spilled] = spill.glob("usage-*.jsonl")
    assert rec.spill_rows == 10
    copy = spill / "usage-copy.jsonl"
    shutil.copy(spilled, copy)  # the same rows twice, as after a crash mid-replay
    rec.dsn = pg.dsn(name)
    rec.disk_rows = 20  # the copy was made behind its back
    await rec.flush()
    await rec.aclose()
    assert not list(spill.glob("*.jsonl"))
    assert pg.sql("SELECT count(*), sum(cost_usd) FROM xrouter_usage", name) == "10|5"


def test_shutdown_flushes_or_spills_then_replays(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    env = {"TEST_DATABASE_URL": pg.dsn(name)}
    router = start_router(db_config(provider.url, tmp_path), env)
    c = client(router)
    c.chat.completions.create(model="echo", messages=MSG)
    pg.stop()
    for _ in range(5):
        c.chat.completions.create(model="echo", messages=MSG)
    assert router.stop() in (0, -15)  # uvicorn re-raises the signal once it has shut down
    assert sum(f.read_text().count("\n") for f in (tmp_path / "spill").glob("*.jsonl")) == 6
    pg.start()
    start_router(db_config(provider.url, tmp_path), env)
    deadline = time.monotonic() + 15
    while pg.sql("SELECT count(*) FROM xrouter_usage", name) != "6":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert not list((tmp_path / "spill").glob("*.jsonl"))


def test_budget_enforced_from_recorded_spend(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    config = db_config(provider.url, tmp_path)
    config["keys"][0]["limits"] = {"budgetUsd": 0.000001}
    env = {"TEST_DATABASE_URL": pg.dsn(name)}
    router = start_router(config, env)
    client(router).chat.completions.create(model="gpt", messages=MSG)
    with pytest.raises(openai.RateLimitError) as e:
        client(router).chat.completions.create(model="gpt", messages=MSG)
    assert e.value.code == "budget_limit_exceeded"
    _wait_drained(router)
    router.stop()
    # A fresh process reads the spend back from the database.
    again = start_router(config, env)
    time.sleep(1)
    with pytest.raises(openai.RateLimitError):
        client(again).chat.completions.create(model="gpt", messages=MSG)
    assert again.metric("xrouter_limit_rejections_total", limit="budget") == 1


def test_migrations_under_concurrent_start(database: tuple[Postgres, str]) -> None:
    from xrouter_router.ledger import db

    pg, name = database

    async def one() -> int:
        pool = await db.connect(pg.dsn(name))
        try:
            return await db.migrate(pool)
        finally:
            await pool.close()

    async def many() -> list[int]:
        return await asyncio.gather(*(one() for _ in range(5)))

    assert asyncio.run(many()) == [len(db.MIGRATIONS)] * 5
    assert pg.sql("SELECT count(*) FROM xrouter_schema", name) == str(len(db.MIGRATIONS))


def _rows(n: int, prefix: str = "r") -> list[UsageRow]:
    return [
        UsageRow(f"{prefix}{i}", "k", "m", "p", "u", 1, 2, 0, 0.5, 200, 1.0, time.time()) for i in range(n)
    ]


async def _lock_usage_table(dsn: str) -> Any:
    """Another session holding an exclusive lock: writes wait on it, as on a slow database."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    tx = conn.transaction()
    await tx.start()
    await conn.execute("LOCK TABLE xrouter_usage IN ACCESS EXCLUSIVE MODE")
    return conn


async def _wait_popped(rec: UsageRecorder) -> None:
    deadline = time.monotonic() + 5
    while rec.queue:
        assert time.monotonic() < deadline, "the writer did not pick up the batch"
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # the writer is inside its write, waiting on the lock


async def test_shutdown_finishes_the_batch_being_written(
    tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    spill = tmp_path / "spill"
    rec = UsageRecorder(pg.dsn(name), Metrics(), str(spill), flush_interval=0.05)
    await rec.start()
    blocker = await _lock_usage_table(pg.dsn(name))
    for r in _rows(10):
        rec.record(r)
    await _wait_popped(rec)

    async def release() -> None:
        await asyncio.sleep(1)
        await blocker.close()

    releasing = asyncio.create_task(release())
    await rec.aclose()  # shutdown while the batch is being written
    await releasing
    assert pg.sql("SELECT count(*) FROM xrouter_usage", name) == "10"
    assert not list(spill.glob("*.jsonl"))  # written, not spilled


async def test_shutdown_spills_a_write_stuck_past_the_deadline(
    tmp_path: Path, database: tuple[Postgres, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from xrouter_router.ledger import usage

    monkeypatch.setattr(usage, "WRITE_DRAIN_SECONDS", 0.5, raising=False)
    pg, name = database
    spill = tmp_path / "spill"
    rec = UsageRecorder(pg.dsn(name), Metrics(), str(spill), flush_interval=0.05)
    await rec.start()
    blocker = await _lock_usage_table(pg.dsn(name))
    for r in _rows(10):
        rec.record(r)
    await _wait_popped(rec)
    began = time.monotonic()
    await rec.aclose()
    assert time.monotonic() - began < 8  # the deadline, then the pool's own close
    await blocker.close()
    assert sum(f.read_bytes().count(b"\n") for f in spill.glob("*.jsonl")) == 10
    again = UsageRecorder(pg.dsn(name), Metrics(), str(spill))
    await again.flush()
    await again.aclose()
    assert pg.sql("SELECT count(*), count(DISTINCT request_id) FROM xrouter_usage", name) == "10|10"


async def test_set_dsn_writes_through_the_new_url(tmp_path: Path, database: tuple[Postgres, str]) -> None:
    pg, name = database
    rotated = name + "_rotated"  # stands in for the same database behind a new password
    pg.sql(f"CREATE DATABASE {rotated}")
    rec = UsageRecorder(pg.dsn(name), Metrics(), str(tmp_path / "spill"))
    rec.record(_rows(1, "before")[0])
    await rec.flush()
    rec.set_dsn(pg.dsn(rotated))
    rec.record(_rows(1, "after")[0])
    await rec.flush()
    await rec.aclose()
    assert pg.sql("SELECT request_id FROM xrouter_usage", name) == "before0"
    assert pg.sql("SELECT request_id FROM xrouter_usage", rotated) == "after0"


async def test_an_unexpected_write_error_loses_no_row(
    tmp_path: Path, database: tuple[Postgres, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pg, name = database
    real = asyncpg.Connection.copy_records_to_table
    failures = iter([RuntimeError("outside asyncpg's hierarchy")])

    async def surprising(self: asyncpg.Connection, *args: Any, **kwargs: Any) -> Any:
        for exc in failures:
            raise exc
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(asyncpg.Connection, "copy_records_to_table", surprising)
    spill = tmp_path / "spill"
    rec = UsageRecorder(pg.dsn(name), Metrics(), str(spill))
    for r in _rows(10):
        rec.record(r)
    await rec.flush()  # the surprise: the batch goes to the spill, not away
    assert rec.spill_rows == 10
    await rec.flush()  # replayed
    await rec.aclose()
    assert pg.sql("SELECT count(*), count(DISTINCT request_id) FROM xrouter_usage", name) == "10|10"


async def test_rows_stay_queued_when_the_spill_refuses_too(
    tmp_path: Path, database: tuple[Postgres, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pg, name = database
    rec = UsageRecorder("postgresql://xrouter@127.0.0.1:1/none", Metrics(), str(tmp_path / "spill"))
    assert rec.disk is not None

    def full(batch: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rec.disk, "append", full)
    for r in _rows(10):
        rec.record(r)
    await rec.flush()  # no database and a full disk: the rows wait in memory
    assert len(rec.queue) == 10
    monkeypatch.undo()
    rec.dsn = pg.dsn(name)
    await rec.flush()
    await rec.aclose()
    assert pg.sql("SELECT count(*), count(DISTINCT request_id) FROM xrouter_usage", name) == "10|10"
