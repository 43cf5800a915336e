"""Every exit is metered: a client that hangs up, an upstream that stalls, and a
stream that ends in the upstream's own error event each leave a usage row with
tokens and cost (estimated where the upstream never said), and the error events
count as failures."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from xrouter_router.ledger import db

from .conftest import KEY, Config, StartRouter, db_config
from .servers import FakeProvider, Postgres, Router

PROMPT = "please count every one of these words " * 20  # a prompt worth estimating


def _config(provider: FakeProvider, tmp: Path) -> Config:
    config = db_config(provider.url, tmp)
    config["providers"][0]["timeouts"] = {"connect": 1, "firstByte": 5, "streamIdle": 1, "total": 30}
    config["providers"].append({"name": "fragile", "type": "anthropic", "baseUrl": provider.url})
    config["models"] += [
        {"name": "trickle", "targets": [{"provider": "fake", "model": "slowstream-150"}]},
        {"name": "claude-trickle", "targets": [{"provider": "fragile", "model": "slowstream-150"}]},
        {"name": "stuck", "targets": [{"provider": "fake", "model": "stall-6"}]},
        {"name": "claude-fail", "targets": [{"provider": "fragile", "model": "midfail"}]},
        {"name": "resp-fail", "targets": [{"provider": "fake2", "model": "midfail"}]},
    ]
    price = {"input": 1.0, "output": 2.0}
    config["prices"].update(
        {"slowstream-150": price, "stall-6": price, "midfail": price, "breakstream": price}
    )
    config["breaker"] = {"failureThreshold": 1, "cooldownSeconds": 60}
    return config


def _row(pg: Postgres, name: str, rid: str, timeout: float = 15) -> list[str]:
    deadline = time.monotonic() + timeout
    query = (
        # estimated through to_jsonb: a database without the column answers "absent".
        "SELECT status, prompt_tokens, completion_tokens, cost_usd > 0,"
        " coalesce(to_jsonb(u) ->> 'estimated', 'absent')"
        f" FROM xrouter_usage u WHERE request_id = '{rid}'"
    )
    while time.monotonic() < deadline:
        out = pg.sql(query, name)
        if out:
            return out.split("|")
        time.sleep(0.2)
    raise AssertionError(f"no usage row for {rid}")


def _start(start_router: StartRouter, provider: FakeProvider, tmp: Path, pg: Postgres, name: str) -> Router:
    return start_router(_config(provider, tmp), {"TEST_DATABASE_URL": pg.dsn(name)})


def _chat(model: str) -> dict[str, Any]:
    return {"model": model, "stream": True, "messages": [{"role": "user", "content": PROMPT}]}


def _hang_up(router: Router, model: str, events: int) -> str:
    """Read ``events`` data lines of a chat stream of ``model``, then hang up; the request id."""
    headers = {"authorization": f"Bearer {KEY}"}
    with (
        httpx.Client(timeout=10) as http,
        http.stream("POST", router.url + "/v1/chat/completions", json=_chat(model), headers=headers) as r,
    ):
        rid = r.headers["x-request-id"]
        seen = 0
        for line in r.iter_lines():
            seen += line.startswith("data:")
            if seen == events:
                break  # the client hangs up
    return rid


def test_hanging_up_mid_stream_records_tokens_and_cost(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    router = _start(start_router, provider, tmp_path, pg, name)
    rid = _hang_up(router, "trickle", 5)  # 5 of ~160 chunks
    status, prompt, completion, costly, estimated = _row(pg, name, rid)
    assert status == "499"
    assert int(prompt) > 100  # the prompt, estimated from the request
    assert 1 <= int(completion) < 20  # what was streamed before the hang-up
    assert costly == "t" and estimated == "true"


def test_hanging_up_on_anthropic_keeps_its_prompt_count(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    router = _start(start_router, provider, tmp_path, pg, name)
    rid = _hang_up(router, "claude-trickle", 5)  # a few words in
    status, prompt, completion, costly, estimated = _row(pg, name, rid)
    # message_start said 10 input tokens and 4 read from the cache: exact, not estimated.
    assert (status, prompt) == ("499", "14")
    assert int(completion) >= 1 and costly == "t" and estimated == "true"


def test_a_stalled_stream_records_tokens_and_cost(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    router = _start(start_router, provider, tmp_path, pg, name)
    headers = {"authorization": f"Bearer {KEY}"}
    r = httpx.post(router.url + "/v1/chat/completions", json=_chat("stuck"), headers=headers, timeout=20)
    assert "upstream timed out" in r.text
    status, prompt, completion, costly, estimated = _row(pg, name, r.headers["x-request-id"])
    assert status == "504"
    assert int(prompt) > 100 and int(completion) >= 1
    assert costly == "t" and estimated == "true"


@pytest.mark.parametrize(
    ("path", "model", "body"),
    [
        ("/v1/chat/completions", "claude-fail", {"messages": [{"role": "user", "content": "a b c"}]}),
        (
            "/v1/messages",
            "claude-fail",
            {"max_tokens": 50, "messages": [{"role": "user", "content": "a b c"}]},
        ),
        ("/v1/responses", "resp-fail", {"input": "a b c"}),
    ],
    ids=["anthropic-translated", "anthropic-passthrough", "responses-failed"],
)
def test_an_upstream_error_event_mid_stream_is_a_failure(
    start_router: StartRouter,
    provider: FakeProvider,
    tmp_path: Path,
    database: tuple[Postgres, str],
    path: str,
    model: str,
    body: dict[str, Any],
) -> None:
    pg, name = database
    router = _start(start_router, provider, tmp_path, pg, name)
    headers = {"authorization": f"Bearer {KEY}", "x-api-key": KEY}
    r = httpx.post(router.url + path, json={"model": model, "stream": True, **body}, headers=headers)
    assert r.status_code == 200  # the stream had started; the error event reached the client
    assert "Overloaded" in r.text or "response.failed" in r.text
    status, prompt, completion, costly, _ = _row(pg, name, r.headers["x-request-id"])
    assert status == "502"  # not a success
    assert int(prompt) > 0 and int(completion) > 0 and costly == "t"
    assert router.metric("xrouter_requests_total", model=model, status="502") == 1
    # The breaker counted it (failureThreshold 1): the next request finds it open.
    again = httpx.post(router.url + path, json={"model": model, "stream": True, **body}, headers=headers)
    assert again.status_code == 503 and "circuit open" in again.text


async def test_the_estimated_column_is_added_to_an_existing_table(database: tuple[Postgres, str]) -> None:
    pg, name = database
    conn = await asyncpg.connect(pg.dsn(name))
    try:
        # The database as the previous release left it: schema version 2, with rows.
        await conn.execute(
            "CREATE TABLE xrouter_schema (version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, sql in enumerate(db.MIGRATIONS[:2], start=1):
            await conn.execute(sql)
            await conn.execute("INSERT INTO xrouter_schema (version) VALUES ($1)", version)
        await conn.execute(
            "INSERT INTO xrouter_usage VALUES"
            " ('old', 'k', 'm', 'p', 'u', 1, 2, 0, 0.5, 200, 1.0, now(), NULL)"
        )
    finally:
        await conn.close()
    pool = await db.connect(pg.dsn(name))
    try:
        assert await db.migrate(pool) == len(db.MIGRATIONS)
        assert await pool.fetchval("SELECT estimated FROM xrouter_usage WHERE request_id = 'old'") is False
    finally:
        await pool.close()


def test_a_stream_the_upstream_breaks_records_tokens_and_cost(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    router = _start(start_router, provider, tmp_path, pg, name)
    headers = {"authorization": f"Bearer {KEY}"}
    body = {**_chat("breakstream"), "messages": [{"role": "user", "content": PROMPT}]}
    r = httpx.post(router.url + "/v1/chat/completions", json=body, headers=headers)
    assert "upstream stream ended early" in r.text  # two chunks, then the connection dropped
    status, prompt, completion, costly, estimated = _row(pg, name, r.headers["x-request-id"])
    assert status == "502" and int(prompt) > 100 and int(completion) >= 1
    assert costly == "t" and estimated == "true"
