"""The response cache: exact matches on the normalized request, in a real Redis, per key
or shared; hits skip the upstream, cost nothing and are counted; streams, no-cache,
errors and oversized answers are never served from it; Redis down is a miss."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openai
import pytest
from xrouter_router.cache import cache_key
from xrouter_router.config import CacheConfig

from .conftest import KEY, KEY2, StartRouter, base_config, client
from .servers import FakeProvider, Postgres, RedisServer, Router

MSG: Any = [{"role": "user", "content": "what is cached stays cached"}]


def _config(provider: FakeProvider, tmp: Path, db: bool = False, **cache: Any) -> dict[str, Any]:
    config = base_config(provider.url, tmp, redis={"url": {"env": "TEST_REDIS_URL"}})
    cached = {"ttlSeconds": 60, **cache}
    config["models"] += [
        {"name": "cached", "targets": [{"provider": "fake", "model": "cached-up"}], "cache": cached},
        {"name": "flaky", "targets": [{"provider": "fake2", "model": "flaky-1"}], "cache": cached},
        {"name": "echo-cached", "targets": [{"provider": "mock", "model": "echo-1"}], "cache": cached},
    ]
    config["keys"][1]["limits"] = {"allowedModels": ["echo", "cached"]}
    config["prices"]["cached-up"] = {"input": 1.0, "output": 2.0}
    if db:
        config["database"]["url"] = {"env": "TEST_DATABASE_URL"}
    return config


def _ask(router: Router, key: str = KEY, **kw: Any) -> tuple[str, str, str]:
    """(content, x-xrouter-cache, x-request-id)"""
    raw = client(router, key).chat.completions.with_raw_response.create(
        model=kw.pop("model", "cached"), messages=kw.pop("messages", MSG), **kw
    )
    reply = raw.parse()
    return (
        str(reply.choices[0].message.content),
        raw.headers.get("x-xrouter-cache", ""),
        raw.headers["x-request-id"],
    )


def test_hit_skips_the_upstream_and_is_recorded_at_zero_cost(
    start_router: StartRouter,
    provider: FakeProvider,
    tmp_path: Path,
    redis: RedisServer,
    database: tuple[Postgres, str],
) -> None:
    pg, name = database
    env = {"TEST_REDIS_URL": redis.url, "TEST_DATABASE_URL": pg.dsn(name)}
    router = start_router(_config(provider, tmp_path, db=True), env)
    first, state1, rid1 = _ask(router)
    # user and stream_options don't change the answer: the same entry serves them.
    second, state2, rid2 = _ask(router, user="someone-else")
    assert (state1, state2) == ("miss", "hit")
    assert first == second == "what is cached stays cached"
    assert provider.stats()["cached-up"] == 1
    # Anything that changes the answer is another entry.
    _, state3, _ = _ask(router, temperature=0.5)
    assert state3 == "miss"
    assert provider.stats()["cached-up"] == 2
    assert router.metric("xrouter_cache_hits_total", model="cached") == 1
    assert router.metric("xrouter_cache_misses_total", model="cached") == 2
    deadline = time.monotonic() + 10
    rows = ""
    while rows.count("\n") < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = pg.sql(
            "SELECT request_id, provider, status, cache_status, cost_usd FROM xrouter_usage"
            f" WHERE request_id IN ('{rid1}', '{rid2}') ORDER BY created_at",
            name,
        )
    miss, hit = rows.splitlines()
    assert miss.startswith(f"{rid1}|fake|200|cache_miss|") and float(miss.rsplit("|", 1)[1]) > 0
    assert hit == f"{rid2}|cache|200|cache_hit|0"


def test_scope_key_keeps_keys_apart_and_shared_does_not(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, redis: RedisServer
) -> None:
    env = {"TEST_REDIS_URL": redis.url}
    router = start_router(_config(provider, tmp_path), env)
    assert _ask(router, KEY)[1] == "miss"
    assert _ask(router, KEY2)[1] == "miss"  # another key never sees alpha's answer
    assert _ask(router, KEY2)[1] == "hit"
    router.stop()
    provider.reset()
    import redis as redis_lib

    redis_lib.Redis.from_url(redis.url).flushall()
    shared = start_router(_config(provider, tmp_path, scope="shared"), env)
    assert _ask(shared, KEY)[1] == "miss"
    assert _ask(shared, KEY2)[1] == "hit"
    assert provider.stats()["cached-up"] == 1


def test_no_cache_streams_errors_and_large_answers_go_upstream(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, redis: RedisServer
) -> None:
    router = start_router(_config(provider, tmp_path, maxEntryBytes=2000), {"TEST_REDIS_URL": redis.url})
    assert _ask(router)[1] == "miss"
    # no-cache: a fresh answer (and stored); no-store: neither looked up nor stored.
    assert _ask(router, extra_headers={"Cache-Control": "no-cache"})[1] == "miss"
    assert _ask(router, extra_headers={"Cache-Control": "no-store"})[1] == "miss"
    assert provider.stats()["cached-up"] == 3
    # A stream always goes upstream, and the non-streamed entry stays for non-streams.
    raw = client(router).chat.completions.with_raw_response.create(model="cached", messages=MSG, stream=True)
    assert raw.headers["x-xrouter-cache"] == "miss"
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "what is cached stays cached"
    assert provider.stats()["cached-up"] == 4
    assert _ask(router)[1] == "hit"
    # An answer over maxEntryBytes is never stored.
    big: Any = [{"role": "user", "content": "word " * 1000}]
    assert _ask(router, messages=big)[1] == "miss"
    assert _ask(router, messages=big)[1] == "miss"
    assert provider.stats()["cached-up"] == 6
    # An error is never stored: flaky-1 fails once (maxRetries 0), then answers.
    with pytest.raises(openai.InternalServerError) as e:
        _ask(router, model="flaky")
    assert e.value.response.headers["x-xrouter-cache"] == "miss"
    assert _ask(router, model="flaky")[1] == "miss"
    assert _ask(router, model="flaky")[1] == "hit"


def test_redis_down_is_a_miss_not_a_failure(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, redis: RedisServer
) -> None:
    router = start_router(_config(provider, tmp_path), {"TEST_REDIS_URL": redis.url})
    assert _ask(router, model="echo-cached")[1] == "miss"
    assert _ask(router, model="echo-cached")[1] == "hit"
    redis.stop()
    for _ in range(5):
        began = time.monotonic()
        content, state, _ = _ask(router, model="echo-cached")
        assert (content, state) == ("what is cached stays cached", "miss")
        assert time.monotonic() - began < 1.0
    assert "Traceback" not in router.log()


def test_the_key_ignores_fields_that_do_not_change_the_answer() -> None:
    config = CacheConfig(ttl_seconds=60)
    base = {"model": "m", "messages": MSG, "temperature": 0}
    same = {
        "temperature": 0,
        "messages": MSG,
        "model": "m",
        "user": "u",
        "stream": False,
        "metadata": {"a": 1},
    }
    assert cache_key("chat", base, config, "k") == cache_key("chat", same, config, "k")
    assert cache_key("chat", base, config, "k") != cache_key("chat", {**base, "temperature": 1}, config, "k")
    assert cache_key("chat", base, config, "k") != cache_key("completions", base, config, "k")
    assert cache_key("chat", base, config, "k") != cache_key("chat", base, config, "other")
    shared = CacheConfig(ttl_seconds=60, scope="shared")
    assert cache_key("chat", base, shared, "k") == cache_key("chat", base, shared, "other")
    assert "k" not in cache_key("chat", base, config, "k").split(":")[3]


def test_cache_config_is_checked_naming_the_field(tmp_path: Path) -> None:
    from xrouter_router.config import RouterConfig

    data = {
        "providers": [{"name": "m", "type": "mock"}],
        "models": [{"name": "a", "targets": [{"provider": "m", "model": "x"}], "cache": {"ttlSeconds": 0}}],
    }
    with pytest.raises(ValueError, match="ttlSeconds"):
        RouterConfig.model_validate(data)
    data["models"][0]["cache"] = {"ttlSeconds": 5, "scope": "everyone"}  # type: ignore[index]
    with pytest.raises(ValueError, match="scope"):
        RouterConfig.model_validate(data)
