"""Budget periods: ``budgetUsd`` over a calendar window in UTC (daily, weekly, monthly)
or the key's lifetime, and ``GET /v1/usage`` showing the caller's spend and what is
left in the current period."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from xrouter_dev.waiting import eventually
from xrouter_router import db
from xrouter_router.budgets import Periods, window

from .conftest import KEY, KEY2, StartRouter, base_config, client, db_config
from .servers import FakeProvider, Postgres, Router

MSG: Any = [{"role": "user", "content": "spend a little"}]


def _ts(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("period", "when", "start", "end"),
    [
        ("daily", (2026, 12, 1, 23, 59, 59), (2026, 12, 1), (2026, 12, 2)),
        ("daily", (2026, 12, 2, 0, 0, 0), (2026, 12, 2), (2026, 12, 3)),
        ("weekly", (2026, 12, 6, 23, 0, 0), (2026, 11, 30), (2026, 12, 7)),  # Sunday: week began Monday
        ("weekly", (2026, 12, 7, 0, 0, 0), (2026, 12, 7), (2026, 12, 14)),
        ("monthly", (2026, 12, 31, 23, 59, 59), (2026, 12, 1), (2027, 1, 1)),
        ("monthly", (2028, 2, 29, 12, 0, 0), (2028, 2, 1), (2028, 3, 1)),
    ],
)
def test_windows_follow_utc_calendar_boundaries(
    period: str, when: tuple[int, ...], start: tuple[int, ...], end: tuple[int, ...]
) -> None:
    w = window(period, _ts(*when))
    assert (w.start, w.end) == (_ts(*start), _ts(*end))
    assert w.label == dt.date(*start).isoformat()


def test_accounts_change_at_the_boundary() -> None:
    periods = Periods()
    before, after = _ts(2026, 12, 1, 23, 59, 59), _ts(2026, 12, 2)
    assert periods.account("alpha", "daily", before) == "alpha@2026-12-01"
    assert periods.account("alpha", "daily", after) == "alpha@2026-12-02"
    # A late row from before the boundary still belongs to the day it was made.
    assert periods.account("alpha", "daily", before) == "alpha@2026-12-01"
    assert periods.account("alpha", "none", after) == "alpha"
    with pytest.raises(ValueError, match="budgetPeriod"):
        window("hourly", after)


def test_budget_period_is_checked_naming_the_field() -> None:
    from xrouter_router.config import Limits

    with pytest.raises(ValueError, match="budgetPeriod"):
        Limits.model_validate({"budgetUsd": 1, "budgetPeriod": "yearly"})


def _usage(router: Router, key: str) -> dict[str, Any]:
    resp = httpx.get(router.url + "/v1/usage", headers={"authorization": f"Bearer {key}"})
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


def _until(check: Callable[[], bool], timeout: float = 20) -> None:
    eventually("the condition", check, timeout, every=0.3)


def test_a_daily_budget_forgets_yesterday_and_a_lifetime_one_does_not(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    config = db_config(provider.url, tmp_path)
    config["keys"][0]["limits"] = {"budgetUsd": 0.5, "budgetPeriod": "daily"}
    config["keys"][1]["limits"] = {"budgetUsd": 0.5}
    router = start_router(config, {"TEST_DATABASE_URL": pg.dsn(name)})
    _until(lambda: pg.sql("SELECT count(*) FROM xrouter_schema", name) == str(len(db.MIGRATIONS)))
    # Yesterday both keys spent far over their budget.
    for key in ("alpha", "beta"):
        pg.sql(
            "INSERT INTO xrouter_usage VALUES"
            f" ('old-{key}', '{key}', 'gpt', 'fake', 'gpt-up', 1, 1, 0, 1.0, 200, 1,"
            " date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '1 second', NULL)",
            name,
        )
    _until(lambda: _usage(router, KEY2)["spentUsd"] >= 1.0)
    with pytest.raises(openai.RateLimitError) as e:
        client(router, KEY2).chat.completions.create(model="echo", messages=MSG)
    assert e.value.code == "budget_limit_exceeded"
    beta = _usage(router, KEY2)
    assert beta["budgetPeriod"] == "none" and beta["remainingUsd"] == 0 and beta["periodStart"] is None
    # alpha's daily budget starts afresh today.
    client(router).chat.completions.create(model="gpt", messages=MSG)
    alpha = _usage(router, KEY)
    today = dt.datetime.now(dt.UTC).date()
    assert alpha["key"] == "alpha" and alpha["budgetPeriod"] == "daily"
    assert alpha["periodStart"] == f"{today.isoformat()}T00:00:00Z"
    assert alpha["periodEnd"] == f"{(today + dt.timedelta(days=1)).isoformat()}T00:00:00Z"
    assert 0 < alpha["spentUsd"] < 0.001
    assert alpha["remainingUsd"] == pytest.approx(0.5 - alpha["spentUsd"])
    # Today's spend (from another replica, say) counts once the database says so.
    pg.sql(
        "INSERT INTO xrouter_usage VALUES"
        " ('new-alpha', 'alpha', 'gpt', 'fake', 'gpt-up', 1, 1, 0, 1.0, 200, 1, now(), NULL)",
        name,
    )
    _until(lambda: _usage(router, KEY)["remainingUsd"] == 0)
    with pytest.raises(openai.RateLimitError) as e:
        client(router).chat.completions.create(model="gpt", messages=MSG)
    assert e.value.code == "budget_limit_exceeded"


def test_usage_needs_the_callers_key_and_shows_keys_without_a_budget(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path
) -> None:
    router = start_router(base_config(provider.url, tmp_path))
    assert httpx.get(router.url + "/v1/usage").status_code == 401
    bad = httpx.get(router.url + "/v1/usage", headers={"authorization": "Bearer sk-nope"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"
    client(router).chat.completions.create(model="gpt", messages=MSG)
    alpha = _usage(router, KEY)
    assert alpha["budgetUsd"] is None and alpha["remainingUsd"] is None and alpha["budgetPeriod"] == "none"
    assert alpha["spentUsd"] > 0  # without a database: this process's spend


def test_changing_the_period_on_reload_reads_the_new_periods_spend_at_once(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    config = db_config(provider.url, tmp_path)
    config["keys"][0]["limits"] = {"budgetUsd": 0.5}
    router = start_router(config, {"TEST_DATABASE_URL": pg.dsn(name)})
    _until(lambda: pg.sql("SELECT count(*) FROM xrouter_schema", name) == str(len(db.MIGRATIONS)))
    row = (
        "INSERT INTO xrouter_usage VALUES"
        " ('{}', 'alpha', 'gpt', 'fake', 'gpt-up', 1, 1, 0, {}, 200, 1, {}, NULL)"
    )
    pg.sql(row.format("old", 1.0, "now() - interval '40 days'"), name)
    pg.sql(row.format("new", 0.3, "now()"), name)
    _until(lambda: _usage(router, KEY)["remainingUsd"] == 0)  # lifetime: 1.3 spent
    # Just after a spend refresh: the next periodic one is about 5 s away.
    config["keys"][0]["limits"] = {"budgetUsd": 0.5, "budgetPeriod": "monthly"}
    router.write_config(config)
    _until(lambda: _usage(router, KEY)["budgetPeriod"] == "monthly", timeout=5)
    began = time.monotonic()
    # This month's 0.3 is read at the next flush (0.2 s), not at the next refresh.
    _until(lambda: _usage(router, KEY)["remainingUsd"] == pytest.approx(0.2), timeout=10)
    assert time.monotonic() - began < 2.5
    client(router).chat.completions.create(model="gpt", messages=MSG)
