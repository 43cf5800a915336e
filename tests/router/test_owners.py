"""Stored responses belong to the key that created them: other keys get the 404 of an
unknown id, on every replica and after a restart (the record is in a real Redis);
a background response is metered once, when its result is fetched, against the
key that created it; without Redis, ``background`` is refused naming the field."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .conftest import ADMIN, KEY, StartRouter, base_config, client, db_config
from .servers import FakeProvider, Postgres, RedisServer, Router
from .test_usage import _wait_drained

GAMMA = "sk-test-gamma"  # may use every model, like alpha


def _config(provider: FakeProvider, tmp: Path, db: bool = False) -> dict[str, Any]:
    make = db_config if db else base_config
    config = make(provider.url, tmp, redis={"url": {"env": "TEST_REDIS_URL"}}, adminKey={"env": "ADMIN_KEY"})
    config["keys"].append({"name": "gamma", "secret": {"env": "KEY_GAMMA"}})
    return config


def _http(router: Router, key: str) -> httpx.Client:
    return httpx.Client(base_url=router.url + "/v1", headers={"authorization": f"Bearer {key}"})


def test_only_the_creating_key_reaches_a_stored_response(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, redis: RedisServer
) -> None:
    env = {"TEST_REDIS_URL": redis.url, "KEY_GAMMA": GAMMA}
    config = _config(provider, tmp_path)
    a, b = start_router(config, env), start_router(config, env)
    out = client(a).responses.create(model="gpt", input="alpha's secret plans")

    # Another key, on another replica: every request about the id is the 404 of an
    # id that does not exist, and none of them reaches the provider.
    with _http(b, GAMMA) as gamma:
        answers = [
            gamma.get(f"/responses/{out.id}"),
            gamma.get(f"/responses/{out.id}/input_items"),
            gamma.post(f"/responses/{out.id}/cancel"),
            gamma.delete(f"/responses/{out.id}"),
        ]
        unknown = gamma.get("/responses/resp_unknown").json()
    for r in answers:
        assert r.status_code == 404
        assert r.json() == {
            **unknown,
            "error": {
                **unknown["error"],
                "message": unknown["error"]["message"].replace("resp_unknown", out.id),
            },
        }
        assert b"secret plans" not in r.content
    assert provider.last()["path"] == "/v1/responses"  # the create was the last it heard

    # The creating key, on the other replica; and the admin key.
    assert client(b).responses.retrieve(out.id).output_text == "alpha's secret plans"
    assert [i.type for i in client(b).responses.input_items.list(out.id).data] == ["message"]
    assert client(b, ADMIN).responses.retrieve(out.id).id == out.id

    # After a restart the record is still there.
    a.stop()
    c = start_router(config, env)
    assert client(c).responses.retrieve(out.id).id == out.id
    with pytest.raises(openai.NotFoundError):
        client(c, GAMMA).responses.retrieve(out.id)
    client(c).responses.delete(out.id)
    with pytest.raises(openai.NotFoundError):
        client(c).responses.retrieve(out.id)  # deleted at the provider


def test_a_background_response_is_metered_once_when_fetched(
    start_router: StartRouter,
    provider: FakeProvider,
    tmp_path: Path,
    redis: RedisServer,
    database: tuple[Postgres, str],
) -> None:
    pg, name = database
    env = {"TEST_REDIS_URL": redis.url, "TEST_DATABASE_URL": pg.dsn(name), "KEY_GAMMA": GAMMA}
    config = _config(provider, tmp_path, db=True)
    config["keys"][0]["limits"] = {"budgetUsd": 0.000001}  # gpt-up: $1 in, $2 out per million
    a, b = start_router(config, env), start_router(config, env)
    created = client(a).responses.create(model="gpt", input="one two three four", background=True)
    assert created.status == "queued" and created.usage is None

    deadline = time.monotonic() + 10
    while (got := client(a).responses.retrieve(created.id)).status != "completed":
        assert got.usage is None and time.monotonic() < deadline
        time.sleep(0.1)
    assert got.usage is not None and got.usage.output_tokens == 4
    for router in (a, b, a, b):  # fetched again, on both replicas: counted once
        assert client(router).responses.retrieve(created.id).status == "completed"
    with pytest.raises(openai.NotFoundError):
        client(b, GAMMA).responses.retrieve(created.id)
    _wait_drained(a)
    _wait_drained(b)
    time.sleep(0.3)
    rows = pg.sql(
        "SELECT count(*), sum(prompt_tokens), sum(completion_tokens), sum(cost_usd) * 1e6"
        " FROM xrouter_usage WHERE key_name = 'alpha'",
        name,
    )
    count, prompt, completion, micro_usd = rows.split("|")
    # The create (queued, no tokens) and the one metered fetch: 4 in, 4 out.
    assert (int(count), int(prompt), int(completion)) == (2, 4, 4)
    assert float(micro_usd) == pytest.approx(4 * 1 + 4 * 2)
    assert pg.sql("SELECT count(*) FROM xrouter_usage WHERE key_name = 'gamma'", name) == "0"
    # The key's budget holds what the fetch cost.
    with pytest.raises(openai.RateLimitError) as e:
        client(a).responses.create(model="gpt", input="more", background=True)
    assert e.value.code == "budget_limit_exceeded"


def test_background_without_redis_is_refused_naming_the_field(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path
) -> None:
    router = start_router(base_config(provider.url, tmp_path))
    with pytest.raises(openai.BadRequestError) as e:
        client(router).responses.create(model="gpt", input="later", background=True)
    assert e.value.param == "background" and "redis" in e.value.message
    assert provider.stats() == {}  # nothing was started upstream
    out = client(router, KEY).responses.create(model="gpt", input="now")  # not in the background: served
    assert out.status == "completed"


def test_with_redis_down_a_stored_response_is_a_503_for_everyone(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, redis: RedisServer
) -> None:
    env = {"TEST_REDIS_URL": redis.url, "KEY_GAMMA": GAMMA}
    config = _config(provider, tmp_path)
    a, b = start_router(config, env), start_router(config, env)
    out = client(a).responses.create(model="gpt", input="kept in redis")
    redis.stop()
    # Neither the owner nor another key can be told anything the record would decide.
    for key in (KEY, GAMMA):
        with _http(b, key) as http:
            r = http.get(f"/responses/{out.id}")
            unknown = http.get("/responses/resp_unknown")
        assert (r.status_code, unknown.status_code) == (503, 503)
        assert r.json()["error"]["code"] == "owners_unavailable" and b"kept in redis" not in r.content
    # The admin key still reaches it.
    assert client(b, ADMIN).responses.retrieve(out.id).output_text == "kept in redis"
