"""The response cache: exact matches on the normalized request and the route's targets,
in a real Redis, per key or shared; hits skip the upstream, cost nothing and are
counted; a stream is replayed byte for byte, to streams only; no-cache, errors and
oversized answers are never served from it; Redis down is a miss."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from xrouter_router.cache import cache_key
from xrouter_router.config import CacheConfig

from .conftest import KEY, KEY2, StartRouter, base_config, client
from .servers import FakeProvider, Postgres, RedisServer, Router, ScriptedUpstream

MSG: Any = [{"role": "user", "content": "what is cached stays cached"}]


def _config(provider: FakeProvider, tmp: Path, db: bool = False, **cache: Any) -> dict[str, Any]:
    config = base_config(provider.url, tmp, redis={"url": {"env": "TEST_REDIS_URL"}})
    cached = {"ttlSeconds": 60, **cache}
    config["models"] += [
        {"name": "cached", "targets": [{"provider": "fake", "model": "cached-up"}], "cache": cached},
        {"name": "flaky", "targets": [{"provider": "fake2", "model": "flaky-1"}], "cache": cached},
        {"name": "echo-cached", "targets": [{"provider": "mock", "model": "echo-1"}], "cache": cached},
        {"name": "broken", "targets": [{"provider": "fake2", "model": "breakstream"}], "cache": cached},
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
    # user doesn't change the answer: the same entry serves it.
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
    assert _ask(router)[1] == "hit"
    # An answer over maxEntryBytes is never stored.
    big: Any = [{"role": "user", "content": "word " * 1000}]
    assert _ask(router, messages=big)[1] == "miss"
    assert _ask(router, messages=big)[1] == "miss"
    assert provider.stats()["cached-up"] == 5
    # An error is never stored: flaky-1 fails once (maxRetries 0), then answers.
    with pytest.raises(openai.InternalServerError) as e:
        _ask(router, model="flaky")
    assert e.value.response.headers["x-xrouter-cache"] == "miss"
    assert _ask(router, model="flaky")[1] == "miss"
    assert _ask(router, model="flaky")[1] == "hit"


def _stream(router: Router, **kw: Any) -> tuple[str, str, list[Any]]:
    """(content, x-xrouter-cache, chunks) of a streamed request."""
    raw = client(router).chat.completions.with_raw_response.create(
        model=kw.pop("model", "cached"), messages=MSG, stream=True, **kw
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, raw.headers["x-xrouter-cache"], chunks


def test_streams_are_replayed_to_streams_only(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, redis: RedisServer
) -> None:
    router = start_router(_config(provider, tmp_path), {"TEST_REDIS_URL": redis.url})
    text, state, first = _stream(router)
    assert (text, state) == ("what is cached stays cached", "miss")
    # A plain request is another entry: a stream's chunks are not a completion.
    content, state, _ = _ask(router)
    assert (content, state) == (text, "miss")
    # A stream is replayed as it came.
    again, state, chunks = _stream(router)
    assert (again, state) == (text, "hit")
    assert all(c.usage is None for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert {c.id for c in chunks} == {first[0].id}
    # Asking for the usage chunk is another answer: another entry, then a hit.
    for expected in ("miss", "hit"):
        _, state, chunks = _stream(router, stream_options={"include_usage": True})
        assert state == expected
        usage = chunks[-1].usage
        assert usage is not None and usage.completion_tokens == 5 and not chunks[-1].choices
    assert provider.stats()["cached-up"] == 3
    assert router.metric("xrouter_cache_hits_total", model="cached") == 2
    # A broken stream is never stored.
    for _ in range(2):
        with pytest.raises(openai.APIError):
            _stream(router, model="broken")
    assert provider.stats()["breakstream"] == 2


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
        "stream_options": {"include_usage": True},  # only counts for a stream
        "metadata": {"a": 1},
    }
    assert cache_key("chat", base, config, "k") == cache_key("chat", same, config, "k")
    assert cache_key("chat", base, config, "k") != cache_key("chat", {**base, "stream": True}, config, "k")
    assert cache_key("chat", base, config, "k") != cache_key("chat", base, config, "k", targets="other")
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


def test_a_stream_is_replayed_with_every_field(
    start_router: StartRouter, scripted: ScriptedUpstream, tmp_path: Path, redis: RedisServer
) -> None:
    """The chunks carry reasoning_content, logprobs and annotations, and one choice
    has no ``index`` (a route without a cache passes it on; so must a cached one)."""
    config = base_config(scripted.url, tmp_path, redis={"url": {"env": "TEST_REDIS_URL"}})
    config["providers"] = [{"name": "s", "type": "openai", "baseUrl": scripted.url, "maxRetries": 0}]
    config["models"] = [
        {"name": "rich", "targets": [{"provider": "s", "model": "rich"}], "cache": {"ttlSeconds": 60}}
    ]
    config["keys"] = [{"name": "alpha", "secret": {"env": "KEY_ALPHA"}}]
    router = start_router(config, {"TEST_REDIS_URL": redis.url})
    body = {"model": "rich", "messages": MSG, "stream": True}
    with httpx.Client(base_url=router.url, headers={"authorization": f"Bearer {KEY}"}) as http:
        first = http.post("/v1/chat/completions", json=body)
        second = http.post("/v1/chat/completions", json=body)
        plain = http.post("/v1/chat/completions", json={**body, "stream": False})
    assert (first.status_code, first.headers["x-xrouter-cache"]) == (200, "miss")
    assert b'"reasoning_content":"think"' in first.content.replace(b" ", b"")
    assert first.content.endswith(b"data: [DONE]\n\n")
    assert (second.status_code, second.headers["x-xrouter-cache"]) == (200, "hit")
    assert second.content == first.content  # every field, byte for byte
    # A plain request is not answered from the stream's entry.
    assert (plain.headers["x-xrouter-cache"], plain.json()["object"]) == ("miss", "chat.completion")
    assert scripted.stats["rich"] == 2


def test_a_repointed_route_does_not_serve_the_old_answers(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, redis: RedisServer
) -> None:
    config = _config(provider, tmp_path)
    router = start_router(config, {"TEST_REDIS_URL": redis.url})
    assert _ask(router)[1] == "miss"
    assert _ask(router)[1] == "hit"
    cached = next(m for m in config["models"] if m["name"] == "cached")
    cached["targets"] = [{"provider": "fake", "model": "cached-up-2"}]
    router.write_config(config)
    deadline = time.monotonic() + 5
    while router.metric("xrouter_config_reloads_total", result="success") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert _ask(router)[1] == "miss"  # the new upstream answers
    assert provider.stats()["cached-up-2"] == 1
    assert _ask(router)[1] == "hit"


# /v1/responses and /v1/messages on a cached route.


def _cached_router(
    start_router: StartRouter, provider: FakeProvider, tmp: Path, redis: RedisServer
) -> Router:
    config = _config(provider, tmp)
    config["providers"].append({"name": "claude-c", "type": "anthropic", "baseUrl": provider.url})
    config["models"].append(
        {
            "name": "claude-cached",
            "targets": [{"provider": "claude-c", "model": "claude-c-up"}],
            "cache": {"ttlSeconds": 60},
        }
    )
    return start_router(config, {"TEST_REDIS_URL": redis.url})


def test_responses_without_store_are_served_from_the_cache(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, redis: RedisServer
) -> None:
    router = _cached_router(start_router, provider, tmp_path, redis)
    c = client(router).responses.with_raw_response
    states, texts = [], []
    for _ in range(2):
        raw = c.create(model="cached", input="what is cached stays cached", store=False)
        states.append(raw.headers.get("x-xrouter-cache"))
        texts.append(raw.parse().output_text)
    assert states == ["miss", "hit"]
    assert texts == ["what is cached stays cached"] * 2
    assert provider.stats()["cached-up"] == 1
    assert router.metric("xrouter_cache_hits_total", model="cached") == 1


def test_stateful_responses_are_never_served_from_the_cache(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, redis: RedisServer
) -> None:
    """A stored response (``store`` true, the API's default) is a new object at the
    provider each time, and ``previous_response_id`` continues the provider's state:
    neither is answered from the cache, nor stored in it."""
    router = _cached_router(start_router, provider, tmp_path, redis)
    c = client(router).responses.with_raw_response
    ids, states = [], []
    for _ in range(2):
        raw = c.create(model="cached", input="stored each time")  # store defaults to true
        states.append(raw.headers.get("x-xrouter-cache"))
        ids.append(raw.parse().id)
    for _ in range(2):
        raw = c.create(model="cached", input="go on", previous_response_id=ids[0], store=False)
        states.append(raw.headers.get("x-xrouter-cache"))
    assert states == ["miss"] * 4
    assert ids[0] != ids[1]
    assert provider.stats()["cached-up"] == 4
    assert router.metric("xrouter_cache_hits_total", model="cached") == 0
    # Nothing was stored for them either.
    import redis as redis_lib

    assert redis_lib.Redis.from_url(redis.url).keys("xrouter:cache:*") == []


def test_messages_are_served_from_the_cache(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, redis: RedisServer
) -> None:
    import anthropic

    router = _cached_router(start_router, provider, tmp_path, redis)
    ac = anthropic.Anthropic(base_url=router.url, api_key=KEY, max_retries=0)
    kw: Any = {
        "max_tokens": 64,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "cached words"}]}],
    }
    for model, upstream in (
        ("cached", "cached-up"),
        ("claude-cached", "claude-c-up"),
    ):  # translated; passed through
        states, texts = [], []
        for _ in range(2):
            raw = ac.messages.with_raw_response.create(model=model, **kw)
            states.append(raw.headers.get("x-xrouter-cache"))
            texts.append(raw.parse().content[0].text)  # type: ignore[union-attr]
        assert states == ["miss", "hit"], model
        assert texts[0] == texts[1] and "cached words" in texts[0]
        assert provider.stats()[upstream] == 1
    # Another anthropic-beta header may change the answer: another entry.
    raw = ac.messages.with_raw_response.create(
        model="claude-cached", extra_headers={"anthropic-beta": "some-feature-2025-01-01"}, **kw
    )
    assert raw.headers.get("x-xrouter-cache") == "miss"
    assert provider.stats()["claude-c-up"] == 2
