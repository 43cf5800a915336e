"""The router's usage writer on a multi-host ``DATABASE_URL`` with
``target_session_attrs=read-write``: a real primary and its streaming replica
(``pg_basebackup -R``) under traffic; the primary stops, the replica is promoted, and
the writer finds it: every served request has exactly one row, none lost in between.

The figures (window, failed requests, rows before/after) are printed: ``pytest -s``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import KEY, StartRouter, db_config
from .haservers import PostgresPair
from .servers import FakeProvider, Router

MSG: Any = [{"role": "user", "content": "one row each"}]


@pytest.fixture(scope="module")  # one pair (a base backup costs seconds); the failover test goes last
def pair() -> Iterator[PostgresPair]:
    p = PostgresPair()
    yield p
    p.stop()


def _count(pg_sql: Any, name: str) -> int:
    return int(pg_sql("SELECT count(*) FROM xrouter_usage", name))


def _wait_metric(router: Router, name: str, value: float, timeout: float = 30) -> float:
    start = time.monotonic()
    while router.metric(name) != value:
        assert time.monotonic() - start < timeout, f"{name} did not become {value}"
        time.sleep(0.05)
    return time.monotonic()


def test_a_url_whose_hosts_are_all_standbys_is_a_database_outage_not_a_crash(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, pair: PostgresPair
) -> None:
    name = "standby_only"
    pair.primary.sql(f"CREATE DATABASE {name}")
    standby = f"postgresql://xrouter@127.0.0.1:{pair.replica.port}/{name}?target_session_attrs=read-write"
    router = start_router(db_config(provider.url, tmp_path), {"TEST_DATABASE_URL": standby})
    r = httpx.post(
        router.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {KEY}"},
        json={"model": "echo", "messages": MSG},
    )
    assert r.status_code == 200
    ready = httpx.get(router.url + "/ready").json()
    assert ready["database"].startswith("down"), ready
    assert "Traceback" not in router.log()


def test_primary_stopped_and_replica_promoted_under_traffic(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, pair: PostgresPair
) -> None:
    name = "usage_ha"
    pair.primary.sql(f"CREATE DATABASE {name}")
    router = start_router(db_config(provider.url, tmp_path), {"TEST_DATABASE_URL": pair.dsn(name)})
    _wait_metric(router, "xrouter_database_up", 1)
    served: list[str] = []
    failed: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(headers={"authorization": f"Bearer {KEY}"}, timeout=10) as http:
            while not stop.is_set():
                r = http.post(router.url + "/v1/chat/completions", json={"model": "echo", "messages": MSG})
                if r.status_code == 200:
                    served.append(r.headers["x-request-id"])
                else:
                    failed.append(r.status_code)
                time.sleep(0.01)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(3)
        before = _count(pair.primary.sql, name)
        stopped = time.monotonic()
        pair.primary.stop()  # a clean stop: it sends the replica all its WAL first
        down = _wait_metric(router, "xrouter_database_up", 0) - stopped
        pair.promote()
        promoted = time.monotonic() - stopped
        at_promotion = _count(pair.replica.sql, name)
        back = _wait_metric(router, "xrouter_database_up", 1) - stopped
        time.sleep(3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failed, f"requests failed: {failed[:10]}"
    assert at_promotion >= before > 0, "the promoted replica lacks rows the primary had"
    deadline = time.monotonic() + 30
    while _count(pair.replica.sql, name) < len(served):
        assert time.monotonic() < deadline, "rows written around the failover were lost"
        time.sleep(0.3)
    time.sleep(1)  # a duplicate would come after the last missing row
    ids = pair.replica.sql("SELECT request_id FROM xrouter_usage", name).split()
    assert len(ids) == len(set(ids)) == len(served) and set(ids) == set(served)
    print(
        f"\npostgres failover: writer saw the primary down {down:.2f} s after the stop; replica promoted"
        f" at {promoted:.2f} s; writer back at {back:.2f} s (window {back - promoted:.2f} s after the"
        f" promotion); {len(served)} served, {len(failed)} failed; rows: {before} on the primary before"
        f" the stop, {at_promotion} on the replica at promotion, {len(ids)} after ({len(set(ids))} distinct)"
    )
