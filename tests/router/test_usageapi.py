"""``GET /v1/usage`` for a key without a budget sums its spend in PostgreSQL, on the
usage writer's small pool: callers polling it must not turn into one query each."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from .conftest import KEY, StartRouter, db_config
from .servers import FakeProvider, Postgres

SUM = "SELECT coalesce(sum(cost_usd), 0) FROM xrouter_usage"


def test_polling_usage_runs_the_sum_once_per_interval(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    pg.sql(f"ALTER DATABASE {name} SET log_statement = 'all'")  # the server log counts the queries
    router = start_router(db_config(provider.url, tmp_path), {"TEST_DATABASE_URL": pg.dsn(name)})
    before = pg.log().count(SUM)
    with httpx.Client(headers={"authorization": f"Bearer {KEY}"}) as http:
        answers = [http.get(router.url + "/v1/usage") for _ in range(100)]
    time.sleep(0.5)
    assert all(a.status_code == 200 and a.json()["spentUsd"] == 0 for a in answers)
    queries = pg.log().count(SUM) - before
    assert 1 <= queries <= 2, queries  # once, or twice if the 10 s interval ran out
