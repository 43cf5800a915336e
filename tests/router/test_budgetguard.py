"""Budgets that hold across replicas: two router processes share Redis and
PostgreSQL; 32 concurrent clients spend one key's budget; the spend recorded in
PostgreSQL passes ``budgetUsd`` by no more than the stated bound (one request's
reservation). A pod that starts while PostgreSQL is down does not let an exhausted
key spend again."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from xrouter_router.ledger.meter import prompt_estimate

from .conftest import KEY, Config, StartRouter, db_config
from .servers import FakeProvider, Postgres, RedisServer, Router

BUDGET = 1.0
PRICE = {"input": 1000.0, "output": 2000.0}  # USD per million tokens: a few cents a request
MAX_TOKENS = 10
BODY = json.dumps(
    {"model": "paid", "max_tokens": MAX_TOKENS, "messages": [{"role": "user", "content": "spend it all now"}]}
).encode()
# The stated bound: the largest reservation, the prompt estimated from the body at the
# input price plus max_tokens at the output price.
BOUND = (prompt_estimate(len(BODY)) * PRICE["input"] + MAX_TOKENS * PRICE["output"]) / 1e6


def _config(provider: FakeProvider, tmp: Path) -> Config:
    config = db_config(provider.url, tmp, redis={"url": {"env": "TEST_REDIS_URL"}})
    config["models"].append({"name": "paid", "targets": [{"provider": "fake", "model": "slow-150"}]})
    config["prices"]["slow-150"] = PRICE
    config["keys"][0]["limits"] = {"budgetUsd": BUDGET}
    return config


def _env(pg: Postgres, name: str, redis: RedisServer) -> dict[str, str]:
    return {"TEST_DATABASE_URL": pg.dsn(name), "TEST_REDIS_URL": redis.url}


def _spent(pg: Postgres, name: str) -> float:
    return float(
        pg.sql("SELECT coalesce(sum(cost_usd), 0) FROM xrouter_usage WHERE key_name = 'alpha'", name)
    )


def _settled(pg: Postgres, name: str, rows: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while int(pg.sql("SELECT count(*) FROM xrouter_usage WHERE status = 200", name)) < rows:
        assert time.monotonic() < deadline, "usage rows did not arrive"
        time.sleep(0.2)


async def _spend(routers: list[Router], total: int, concurrency: int) -> list[int]:
    statuses: list[int] = []
    todo = iter(range(total))
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}

    async def worker(http: httpx.AsyncClient) -> None:
        for i in todo:
            r = await http.post(routers[i % 2].url + "/v1/chat/completions", content=BODY, headers=headers)
            statuses.append(r.status_code)

    async with httpx.AsyncClient(timeout=30) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return statuses


async def test_two_replicas_and_32_clients_stay_within_the_budget(
    start_router: StartRouter,
    provider: FakeProvider,
    tmp_path: Path,
    database: tuple[Postgres, str],
    redis: RedisServer,
) -> None:
    pg, name = database
    routers = [start_router(_config(provider, tmp_path / f"r{i}"), _env(pg, name, redis)) for i in range(2)]
    statuses = await _spend(routers, 600, 32)
    served = statuses.count(200)
    assert served > 10 and statuses.count(429) > 0 and set(statuses) <= {200, 429}
    _settled(pg, name, served)
    spent = _spent(pg, name)
    print(f"served {served} of 600, spent ${spent:.4f} of ${BUDGET} (bound +${BOUND:.4f})")
    assert spent <= BUDGET + BOUND
    # Most of it was used: the 600 run out while in-flight reservations still hold the
    # last room, so the key may end a little under its budget, never far.
    assert spent >= BUDGET / 2
    usage = httpx.get(routers[0].url + "/v1/usage", headers={"authorization": f"Bearer {KEY}"}).json()
    assert usage["reservedUsd"] == 0  # nothing in flight holds a reservation any more
    assert abs(usage["spentUsd"] - spent) < 1e-6  # Redis's shared account agrees with the book
    assert abs(usage["remainingUsd"] - max(0.0, BUDGET - spent)) < 1e-6


def test_a_pod_started_while_postgres_is_down_does_not_spend_an_exhausted_budget(
    start_router: StartRouter,
    provider: FakeProvider,
    tmp_path: Path,
    database: tuple[Postgres, str],
    redis: RedisServer,
) -> None:
    pg, name = database
    first = start_router(_config(provider, tmp_path / "a"), _env(pg, name, redis))
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    pg.sql(  # the key spent its budget long ago
        "INSERT INTO xrouter_usage (request_id, key_name, model, provider, upstream_model, prompt_tokens,"
        " completion_tokens, cached_tokens, cost_usd, status, latency_ms, created_at)"
        " VALUES ('old', 'alpha', 'paid', 'fake', 'slow-150', 1, 1, 0, 5.0, 200, 1, now())",
        name,
    )
    first.stop()
    redis_lib_flush(redis)  # Redis lost its data too (a restart without persistence)
    pg.stop()
    try:
        second = start_router(_config(provider, tmp_path / "b"), _env(pg, name, redis))
        r = httpx.post(second.url + "/v1/chat/completions", content=BODY, headers=headers)
        assert r.status_code == 503 and r.json()["error"]["code"] == "budget_unavailable"
        body: Any = r.json()
        assert "spend" in body["error"]["message"]
    finally:
        pg.start()
    deadline = time.monotonic() + 30
    while True:  # once PostgreSQL answers, the key is refused for what it is: exhausted
        r = httpx.post(second.url + "/v1/chat/completions", content=BODY, headers=headers)
        if r.status_code == 429:
            break
        assert r.status_code == 503 and time.monotonic() < deadline, r.text
        time.sleep(0.5)
    assert r.json()["error"]["code"] == "budget_limit_exceeded"


def redis_lib_flush(redis: RedisServer) -> None:
    import redis as redis_lib

    redis_lib.Redis.from_url(redis.url).flushall()


async def test_leases_of_a_large_budget_spare_redis_and_keep_the_bound(
    redis: RedisServer, tmp_path: Path
) -> None:
    import redis as redis_lib
    from redis.asyncio import Redis
    from xrouter_router.auth import KeyInfo
    from xrouter_router.config import Limits
    from xrouter_router.errors import APIError
    from xrouter_router.ledger.budgetguard import BudgetGuard
    from xrouter_router.ledger.limits import Limiter
    from xrouter_router.ledger.usage import UsageRecorder
    from xrouter_router.metrics import Metrics

    budget, amount, cost = 5.0, 0.001, 0.0009  # a lease (1 %) holds 50 reservations
    key = KeyInfo("big", "0" * 64, Limits(budget_usd=budget))

    def replica() -> Limiter:
        limiter = Limiter(Redis.from_url(redis.url), "open", Metrics(), 60, lambda _: 0.0)
        limiter.budget = BudgetGuard(limiter, UsageRecorder(None, Metrics(), str(tmp_path)), 60_000)
        return limiter

    replicas = [replica(), replica()]
    sync = redis_lib.Redis.from_url(redis.url)
    sync.config_resetstat()
    spent: list[float] = []
    counter = iter(range(100_000))

    async def client(limiter: Limiter) -> None:
        refused = 0
        while refused < 3:  # a few refusals in a row: the budget is gone for this client
            try:
                lease = await limiter.acquire(key, f"r{next(counter)}", amount)
            except APIError as exc:
                assert exc.code == "budget_limit_exceeded"
                refused += 1
                await asyncio.sleep(0.05)
                continue
            refused = 0
            await asyncio.sleep(0.002)  # the upstream call
            assert lease is not None
            limiter.settle(lease, 0, cost)
            spent.append(cost)

    await asyncio.gather(*(client(replicas[i % 2]) for i in range(32)))
    for limiter in replicas:
        await limiter.aclose()  # returns the leases and sends their costs
    total = sum(spent)
    evalsha = int(sync.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))
    print(f"{len(spent)} requests, ${total:.4f} of ${budget}, {evalsha} Lua calls")
    assert budget * 0.95 <= total <= budget + amount
    # Without leases every request makes two calls (reserve, settle); with them most
    # make none (half is generous: on a loaded machine renewals come back later).
    assert evalsha < len(spent) / 2
    accounts = [k for k in sync.keys("xr:{big}:budget:*") if not k.endswith((b":res", b":amt"))]
    assert len(accounts) == 1 and abs(float(sync.hget(accounts[0], "spent") or 0) - total) < 1e-6
    assert float(sync.hget(accounts[0], "reserved") or 0) < 1e-9  # nothing left held
