"""The shared Redis spill stream: rows spilled while PostgreSQL is down survive the
process (and the pod, and its spill directory) that spilled them; any replica
replays them, exactly one row per request; with Redis down too, disk takes them."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from xrouter_router.ledger.spillstream import STREAM
from xrouter_router.ledger.usage import UsageRecorder, UsageRow
from xrouter_router.metrics import Metrics

from .conftest import KEY, StartRouter, db_config
from .servers import FakeProvider, Postgres, RedisServer

MSG: Any = [{"role": "user", "content": "count me"}]

# A process that records usage rows (as the router does per request), prints each
# request id once recorded, and says "spilled" once nothing is left in its memory.
WORKER = """
import asyncio, os, time
from redis.asyncio import Redis
from xrouter_router.metrics import Metrics
from xrouter_router.ledger.usage import UsageRecorder, UsageRow

async def main():
    redis = Redis.from_url(os.environ["T_REDIS"], socket_timeout=0.5, socket_connect_timeout=0.5)
    rec = UsageRecorder(os.environ["T_DSN"], Metrics(), os.environ["T_SPILL"], batch_size=50,
                        flush_interval=0.05, redis=redis)
    await rec.start()
    n = int(os.environ["T_ROWS"])
    for i in range(n):
        rid = f"{os.getpid()}-{i}"
        rec.record(UsageRow(rid, "k", "m", "p", "u", 1, 2, 0, 0.001, 200, 1.0, time.time()))
        print("served", rid, flush=True)
        if i % 20 == 0:
            await asyncio.sleep(0.01)
    while rec.queue:
        await asyncio.sleep(0.05)
    print("spilled", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def _worker(dsn: str, redis_url: str, spill: Path, rows: int) -> subprocess.Popen[str]:
    env = {**os.environ, "T_DSN": dsn, "T_REDIS": redis_url, "T_SPILL": str(spill), "T_ROWS": str(rows)}
    return subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdout=subprocess.PIPE, text=True)


def _served(proc: subprocess.Popen[str], timeout: float = 30) -> list[str]:
    assert proc.stdout is not None
    served: list[str] = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        assert time.monotonic() < deadline, "the worker did not spill in time"
        if line.startswith("served "):
            served.append(line.split()[1])
        elif line.strip() == "spilled":
            return served
    raise AssertionError(f"the worker exited with {proc.wait()}")


def _rows(n: int, prefix: str) -> list[UsageRow]:
    return [
        UsageRow(f"{prefix}{i}", "k", "m", "p", "u", 1, 2, 0, 0.5, 200, 1.0, time.time()) for i in range(n)
    ]


def test_spill_survives_the_killed_process_and_its_disk(
    tmp_path: Path, database: tuple[Postgres, str], redis: RedisServer
) -> None:
    pg, name = database
    dsn = pg.dsn(name)
    pg.stop()  # PostgreSQL down, traffic
    first = _worker(dsn, redis.url, tmp_path / "pod-a", 600)
    try:
        served = _served(first)
    finally:
        first.send_signal(signal.SIGKILL)  # the pod holding the spill dies
        first.wait()
    assert len(served) == 600
    assert not list((tmp_path / "pod-a").glob("*.jsonl"))  # nothing was only on its disk
    shutil.rmtree(tmp_path / "pod-a")  # and its emptyDir goes with it
    pg.start()
    fresh = _worker(dsn, redis.url, tmp_path / "pod-b", 0)  # a new replica elsewhere
    try:
        _served(fresh)
        deadline = time.monotonic() + 20
        while pg.sql("SELECT count(*) FROM xrouter_usage", name) != "600":
            assert time.monotonic() < deadline, "the new replica did not replay the stream"
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        fresh.send_signal(signal.SIGKILL)
        fresh.wait()
    assert pg.sql("SELECT count(*), count(DISTINCT request_id) FROM xrouter_usage", name) == "600|600"
    assert set(pg.sql("SELECT request_id FROM xrouter_usage", name).split()) == set(served)
    import redis as redis_lib

    assert redis_lib.Redis.from_url(redis.url).xlen(STREAM) == 0


async def test_two_replicas_replay_the_stream_once(
    tmp_path: Path, database: tuple[Postgres, str], redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xrouter_router.ledger import usage

    monkeypatch.setattr(usage, "STREAM_CHECK_SECONDS", 0.0)  # look at the stream every round
    pg, name = database
    down = UsageRecorder(
        "postgresql://xrouter@127.0.0.1:1/none",
        Metrics(),
        str(tmp_path / "a"),
        redis=Redis.from_url(redis.url),
    )
    for r in _rows(1200, "s"):
        down.record(r)
    await down.flush()
    assert down.spill_rows == 1200 and not list((tmp_path / "a").glob("*.jsonl"))
    metrics = [Metrics(), Metrics()]
    replicas = [
        UsageRecorder(
            pg.dsn(name), m, str(tmp_path / f"r{i}"), batch_size=100, redis=Redis.from_url(redis.url)
        )
        for i, m in enumerate(metrics)
    ]
    deadline = time.monotonic() + 20
    while any(r.spill_rows for r in replicas) or not all(r.db_up for r in replicas):
        assert time.monotonic() < deadline
        await asyncio.gather(*(r.flush() for r in replicas))
    for r in replicas:
        await r.aclose()
    assert pg.sql("SELECT count(*), count(DISTINCT request_id) FROM xrouter_usage", name) == "1200|1200"
    written = sum(m.registry.get_sample_value("xrouter_usage_rows_written_total") or 0 for m in metrics)
    assert written == 1200  # the lock kept them from writing the same rows twice


async def test_disk_is_the_last_resort(tmp_path: Path, redis: RedisServer) -> None:
    client = Redis.from_url(redis.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    rec = UsageRecorder("postgresql://xrouter@127.0.0.1:1/none", Metrics(), str(tmp_path), redis=client)
    for r in _rows(5, "x"):
        rec.record(r)
    redis.stop()
    await rec.flush()
    assert sum(f.read_bytes().count(b"\n") for f in tmp_path.glob("usage-*.jsonl")) == 5
    assert rec.spill_rows == 5
    await client.aclose()


def test_router_replaced_during_an_outage_loses_no_row(
    start_router: StartRouter,
    provider: FakeProvider,
    tmp_path: Path,
    database: tuple[Postgres, str],
    redis: RedisServer,
) -> None:
    pg, name = database
    env = {"TEST_DATABASE_URL": pg.dsn(name), "TEST_REDIS_URL": redis.url}

    def config(spill: Path) -> dict[str, Any]:
        return db_config(provider.url, tmp_path, spill, redis={"url": {"env": "TEST_REDIS_URL"}})

    pg.stop()
    old = start_router(config(tmp_path / "pod-a"), env)
    served = []
    with httpx.Client(headers={"authorization": f"Bearer {KEY}"}) as http:
        for _ in range(50):
            r = http.post(old.url + "/v1/chat/completions", json={"model": "echo", "messages": MSG})
            assert r.status_code == 200
            served.append(r.headers["x-request-id"])
    time.sleep(1)  # flushed, and spilled
    old.stop(sig=signal.SIGKILL)
    shutil.rmtree(tmp_path / "pod-a", ignore_errors=True)  # the pod and its emptyDir are gone
    pg.start()
    start_router(config(tmp_path / "pod-b"), env)  # its replacement, on another node
    deadline = time.monotonic() + 10
    while pg.sql("SELECT count(*) FROM xrouter_usage", name) != "50":
        assert time.monotonic() < deadline, "rows spilled by the replaced pod were lost"
        time.sleep(0.2)
    assert set(pg.sql("SELECT request_id FROM xrouter_usage", name).split()) == set(served)
