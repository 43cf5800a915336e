"""``redis.namespace``: two routers sharing one Redis share nothing in it: not the
limits of same-named keys, not cached answers, not the usage spill stream."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import redis as redis_lib
from redis.asyncio import Redis
from xrouter_router.ledger.spillstream import StreamSpill

from .conftest import KEY, StartRouter, base_config
from .servers import FakeProvider, RedisServer, Router

MSG: Any = [{"role": "user", "content": "who answered this"}]


def _router(
    start_router: StartRouter, provider: FakeProvider, tmp: Path, redis: RedisServer, ns: str
) -> Router:
    config = base_config(provider.url, tmp, redis={"url": {"env": "TEST_REDIS_URL"}, "namespace": ns})
    config["keys"][0]["limits"] = {"rpm": 2}
    config["models"].append(
        {"name": "cached", "targets": [{"provider": "mock", "model": "echo-1"}], "cache": {"ttlSeconds": 60}}
    )
    return start_router(config, {"TEST_REDIS_URL": redis.url})


def _post(router: Router, model: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {KEY}"}
    return httpx.post(
        router.url + "/v1/chat/completions", json={"model": model, "messages": MSG}, headers=headers
    )


def test_two_routers_on_one_redis_share_no_limit_and_no_cache(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, redis: RedisServer
) -> None:
    left = 60 - time.time() % 60
    if left < 10:  # keep the test inside one calendar minute (the rpm window)
        time.sleep(left + 0.2)
    a = _router(start_router, provider, tmp_path / "a", redis, "team-a")
    b = _router(start_router, provider, tmp_path / "b", redis, "team-b")
    first = _post(a, "cached")
    assert first.status_code == 200 and first.headers["x-xrouter-cache"] == "miss"
    assert _post(a, "echo").status_code == 200
    assert _post(a, "echo").status_code == 429  # router A's key "alpha" used its 2 a minute
    # Router B has a key named "alpha" too: its own limit, its own cache.
    other = _post(b, "cached")
    assert other.status_code == 200 and other.headers["x-xrouter-cache"] == "miss"
    assert _post(b, "echo").status_code == 200
    assert _post(b, "echo").status_code == 429
    keys = {k.decode() for k in redis_lib.Redis.from_url(redis.url).keys("*")}
    assert keys and all(k.startswith(("team-a:", "team-b:")) for k in keys), keys


async def test_spill_streams_of_two_namespaces_are_apart(redis: RedisServer) -> None:
    client = Redis.from_url(redis.url)
    a, b = StreamSpill(client, "team-a"), StreamSpill(client, "team-b")
    assert await a.add([b'["row"]'])
    assert await a.length() == 1 and await b.length() == 0  # B never replays A's rows
    assert await b.take(10) == []
    await client.aclose()
