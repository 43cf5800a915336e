"""The router behind Redis Sentinel (a master, a replica, three sentinels with quorum 2,
all real) while the master is killed under traffic, with PostgreSQL down so that usage
rows go to the spill stream: the fail-open replica serves every request, the
fail-closed one answers 503 only between the kill and the router finding the promoted
replica, limits are shared again afterwards, and every served request has its row.

The figures (failover window, failed requests, rows) are printed: ``pytest -s``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from xrouter_router.ledger.spillstream import STREAM

from .conftest import KEY, KEY2, StartRouter, db_config
from .haservers import DOWN_AFTER_MS, MASTER, SentinelSet
from .servers import FakeProvider, Postgres, Router

MSG: Any = [{"role": "user", "content": "through the failover"}]
# The documented window (docs/router.md): Sentinel's down-after-milliseconds, its vote
# and promotion (about a second on a quiet network; longer if a vote splits), then the
# router's own part, which this test bounds: its 1 s probe finding the promoted replica.
ROUTER_PART = 2.0  # the 1 s probe, plus its ping through the sentinels on a busy machine

Served = list[tuple[float, int, str]]  # (when, status, request id, or the error code)


@pytest.fixture
def sentinels() -> Iterator[SentinelSet]:
    s = SentinelSet()
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _config(provider: FakeProvider, tmp: Path, spill: str, fail_mode: str, s: SentinelSet) -> dict[str, Any]:
    config = db_config(provider.url, tmp, tmp / spill)
    config["redis"] = {"sentinel": {"masterName": MASTER, "addresses": s.addresses}, "failMode": fail_mode}
    # A concurrency limit makes every request ask Redis (no leased blocks).
    config["keys"][0]["limits"] = {"rpm": 1000000, "maxConcurrent": 50}
    config["keys"][1]["limits"] = {"rpm": 5, "allowedModels": ["echo"]}
    return config


def _load(router: Router, out: Served, stop: threading.Event) -> None:
    with httpx.Client(headers={"authorization": f"Bearer {KEY}"}, timeout=10) as http:
        while not stop.is_set():
            r = http.post(router.url + "/v1/chat/completions", json={"model": "echo", "messages": MSG})
            said = r.headers.get("x-request-id", "") if r.status_code == 200 else r.text[:200]
            out.append((time.monotonic(), r.status_code, said))
            time.sleep(0.01)


def _wait_up(routers: list[Router], since: float, timeout: float = 30) -> list[float]:
    """Seconds from ``since`` until each router says Redis answers again."""
    back: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while len(back) < len(routers):
        assert time.monotonic() < deadline, f"redis not back after {timeout} s: {back}"
        for i, r in enumerate(routers):
            if i not in back and r.metric("xrouter_redis_up") == 1:
                back[i] = time.monotonic() - since
        time.sleep(0.05)
    return [back[i] for i in range(len(routers))]


def test_master_killed_under_traffic(
    start_router: StartRouter,
    provider: FakeProvider,
    tmp_path: Path,
    database: tuple[Postgres, str],
    sentinels: SentinelSet,
) -> None:
    pg, name = database
    env = {"TEST_DATABASE_URL": pg.dsn(name)}
    fail_open = start_router(_config(provider, tmp_path, "pod-a", "open", sentinels), env)
    fail_closed = start_router(_config(provider, tmp_path, "pod-b", "closed", sentinels), env)
    routers = [fail_open, fail_closed]
    assert _wait_up(routers, time.monotonic(), timeout=10)
    served: list[Served] = [[], []]
    stop = threading.Event()
    pairs = zip(routers * 2, served * 2, strict=True)  # two clients per router
    threads = [threading.Thread(target=_load, args=(r, out, stop)) for r, out in pairs]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        pg.stop()  # from now on usage rows go to the spill stream (the replica acknowledges them)
        time.sleep(2)
        killed = time.monotonic()
        sentinels.master.kill()
        old_port, new_port = sentinels.master.port, sentinels.replica.port
        while sentinels.master_port() != new_port:
            assert time.monotonic() - killed < 30, f"no failover: {sentinels.log()}"
            time.sleep(0.05)
        promoted = time.monotonic() - killed
        back = _wait_up(routers, killed)
        # The old master returns, empty; Sentinel turns it into the new master's replica.
        sentinels.master.start()
        sentinels.master, sentinels.replica = sentinels.replica, sentinels.master
        sentinels.wait_settled(new_port)
        time.sleep(2)
        # Rows from before the kill survived it on the promoted replica, with the later ones.
        streamed = sentinels.master.client().xlen(STREAM)
        pg.start()
        time.sleep(2)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert old_port != sentinels.master_port()

    # Limits are shared again, on the promoted replica: 3 + 2 requests on two routers use up rpm 5.
    def ask(r: Router) -> int:
        return httpx.post(
            r.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {KEY2}"},
            json={"model": "echo", "messages": MSG},
        ).status_code

    assert [ask(fail_open) for _ in range(3)] + [ask(fail_closed) for _ in range(2)] == [200] * 5
    assert ask(fail_open) == 429
    assert sentinels.master.client().keys("xr:{beta}:rpm:*")

    opened, closed = served
    assert {s for _, s, _ in opened} == {200}, [(t - killed, s, e) for t, s, e in opened if s != 200][:5]
    refused = [t - killed for t, s, _ in closed if s != 200]
    assert {s for _, s, _ in closed if s != 200} <= {503}
    assert refused and min(refused) >= 0 and max(refused) <= promoted + ROUTER_PART, (promoted, refused[-5:])
    assert promoted >= DOWN_AFTER_MS / 1000  # Sentinel waited for the master to be down that long

    ok = [rid for out in served for _, s, rid in out if s == 200]
    deadline = time.monotonic() + 30
    while int(pg.sql("SELECT count(*) FROM xrouter_usage", name)) < len(ok):
        assert time.monotonic() < deadline, "rows spilled around the failover were lost"
        time.sleep(0.3)
    time.sleep(1)  # a duplicate would come after the last missing row
    counts = pg.sql("SELECT count(*), count(DISTINCT request_id) FROM xrouter_usage", name)
    rows, distinct = map(int, counts.split("|"))
    stored = set(pg.sql("SELECT request_id FROM xrouter_usage", name).split())
    assert set(ok) <= stored and rows == distinct
    assert streamed > 0
    # Refusals are recorded too: one row per request made, the 6 above included.
    assert rows == len(opened) + len(closed) + 6
    print(
        f"\nsentinel failover: promoted after {promoted:.2f} s; redis back in the routers after"
        f" {back[0]:.2f} s (fail-open) / {back[1]:.2f} s (fail-closed); fail-open: {len(opened)} requests,"
        f" 0 failed; fail-closed: {len(closed)} requests, {len(refused)} answered 503 between"
        f" {min(refused):.2f} s and {max(refused):.2f} s after the kill; {streamed} rows in the spill"
        f" stream at the end of the outage; {len(ok)} served, {rows} rows ({distinct} distinct)"
    )
