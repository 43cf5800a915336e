"""Per-key limits: one limit shared by two router processes through one Redis;
Redis outages (fail-open and fail-closed) and recovery; the in-process limiter."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from xrouter_router.auth import KeyInfo
from xrouter_router.config import Limits
from xrouter_router.ledger.limits import LocalLimiter

from .conftest import KEY, StartRouter, base_config, client
from .servers import FakeProvider, RedisServer, Router

MSG: Any = [{"role": "user", "content": "hi"}]


def avoid_minute_boundary(needed: float = 15) -> None:
    """Limits use calendar-minute windows: don't let a test straddle one."""
    left = 60 - time.time() % 60
    if left < needed:
        time.sleep(left + 0.2)


def _limited(provider: FakeProvider, tmp: Path, fail_mode: str = "open", **limits: Any) -> dict[str, Any]:
    config = base_config(provider.url, tmp, redis={"url": {"env": "TEST_REDIS_URL"}, "failMode": fail_mode})
    config["keys"][0]["limits"] = limits
    return config


def _ok(router: Router, n: int) -> int:
    ok = 0
    for _ in range(n):
        try:
            client(router).chat.completions.create(model="echo", messages=MSG)
            ok += 1
        except openai.RateLimitError as exc:
            assert exc.response.headers["retry-after"]
    return ok


def test_local_limiter() -> None:
    now = [120.0]
    lim = LocalLimiter(clock=lambda: now[0])
    key = KeyInfo("k", "0" * 64, Limits(rpm=2, max_concurrent=5, tpm=100))
    assert lim.acquire(key) == (None, 0)
    lim.settle(key, 150, concurrency=True)
    assert lim.acquire(key)[0] == "tpm"
    now[0] = 180.0  # next minute
    assert lim.acquire(key)[0] is None and lim.acquire(key)[0] is None
    assert lim.acquire(key)[0] == "rpm"


def test_shared_limit_across_two_processes(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, redis: RedisServer
) -> None:
    avoid_minute_boundary()
    config = _limited(provider, tmp_path, rpm=10)
    env = {"TEST_REDIS_URL": redis.url}
    a, b = start_router(config, env), start_router(config, env)
    served = sum(_ok(r, 1) for _ in range(10) for r in (a, b))
    assert served == 10  # one limit of 10, not 10 per process
    assert (
        a.metric("xrouter_limit_rejections_total", limit="rpm")
        + b.metric("xrouter_limit_rejections_total", limit="rpm")
        == 10
    )


def test_concurrency_limit_across_processes(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, redis: RedisServer
) -> None:
    config = _limited(provider, tmp_path, maxConcurrent=1)
    env = {"TEST_REDIS_URL": redis.url}
    a, b = start_router(config, env), start_router(config, env)
    import threading

    results: list[int] = []

    def slow() -> None:
        r = httpx.post(
            a.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {KEY}"},
            json={"model": "slow", "messages": MSG},
            timeout=10,
        )
        results.append(r.status_code)

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    with pytest.raises(openai.RateLimitError):
        client(b).chat.completions.create(model="echo", messages=MSG)
    t.join()
    assert results == [200]
    assert _ok(b, 1) == 1  # the slot was released


def test_redis_outage_fail_open_and_recovery(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, redis: RedisServer
) -> None:
    avoid_minute_boundary(25)
    router = start_router(_limited(provider, tmp_path, rpm=1000), {"TEST_REDIS_URL": redis.url})
    assert _ok(router, 3) == 3
    assert httpx.get(router.url + "/ready").json()["status"] == "ready"
    redis.stop()
    began = time.monotonic()
    assert _ok(router, 20) == 20  # keeps serving, per-process limits
    assert time.monotonic() - began < 5  # and Redis is not waited on per request
    ready = httpx.get(router.url + "/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded" and "per process" in ready.json()["redis"]
    assert router.metric("xrouter_redis_up") == 0
    redis.start()
    deadline = time.monotonic() + 10
    while httpx.get(router.url + "/ready").json()["status"] != "ready":
        assert time.monotonic() < deadline, "router did not notice Redis came back"
        time.sleep(0.2)
    assert router.metric("xrouter_redis_up") == 1
    assert _ok(router, 2) == 2
    import redis as redis_lib

    counted = [k for k in redis_lib.Redis.from_url(redis.url).keys("xr:*") if b":rpm:" in k]
    assert counted, "requests are counted in Redis again"


def test_redis_outage_fail_closed(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, redis: RedisServer
) -> None:
    config = _limited(provider, tmp_path, "closed", rpm=50)  # below leasing
    router = start_router(config, {"TEST_REDIS_URL": redis.url})
    assert _ok(router, 1) == 1
    redis.stop()
    with pytest.raises(openai.InternalServerError) as e:
        client(router).chat.completions.create(model="echo", messages=MSG)
    assert e.value.status_code == 503


def test_no_redis_means_per_process_limits(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path
) -> None:
    avoid_minute_boundary()
    config = base_config(provider.url, tmp_path)
    config["keys"][0]["limits"] = {"rpm": 3}
    router = start_router(config)
    assert _ok(router, 5) == 3
    assert "per process" in httpx.get(router.url + "/ready").json()["redis"]


async def test_leased_rpm_is_shared_and_never_exceeded(redis: RedisServer) -> None:
    from redis.asyncio import Redis
    from xrouter_router.errors import APIError
    from xrouter_router.ledger.limits import Limiter, lease_block
    from xrouter_router.metrics import Metrics

    avoid_minute_boundary()
    key = KeyInfo("leased", "0" * 64, Limits(rpm=1000))
    assert lease_block(1000) == 10
    # Two limiters on one Redis: two router processes, as far as Redis can tell.
    limiters = [Limiter(Redis.from_url(redis.url), "open", Metrics(), 60, lambda _: 0.0) for _ in range(2)]
    admitted = refused = 0
    for i in range(1100):
        try:
            await limiters[i % 2].acquire(key, f"r{i}")
            admitted += 1
        except APIError as exc:
            assert exc.status == 429
            refused += 1
    for lim in limiters:
        await lim.aclose()
    assert admitted <= 1000  # never over the limit
    assert admitted >= 1000 - 2 * 15  # under by at most 1.5 blocks per process
    assert refused == 1100 - admitted


async def test_concurrent_first_requests_share_one_lease(redis: RedisServer) -> None:
    import asyncio

    import redis as redis_lib
    from redis.asyncio import Redis
    from xrouter_router.errors import APIError
    from xrouter_router.ledger.limits import Limiter, lease_block
    from xrouter_router.metrics import Metrics

    avoid_minute_boundary(20)
    limit, burst = 100_000, 32
    block = lease_block(limit)
    key = KeyInfo("burst", "0" * 64, Limits(rpm=limit))
    # Two limiters on one Redis: two router processes, as far as Redis can tell.
    limiters = [Limiter(Redis.from_url(redis.url), "open", Metrics(), 60, lambda _: 0.0) for _ in range(2)]
    sync = redis_lib.Redis.from_url(redis.url)
    refused = 0
    sent = 0

    async def one(lim: Limiter) -> None:
        nonlocal refused, sent
        sent += 1
        try:
            await lim.acquire(key, f"r{sent}")
        except APIError as exc:
            assert exc.status == 429
            refused += 1

    # The window's first requests arrive together: one lease, not one per request.
    await asyncio.gather(*(one(limiters[0]) for _ in range(burst)))
    [counter] = sync.keys("xr:{burst}:rpm:*")
    assert int(sync.get(counter) or 0) == block
    await asyncio.gather(*(one(limiters[1]) for _ in range(burst)))
    assert int(sync.get(counter) or 0) == 2 * block
    # Then exactly the limit's worth of requests in bursts of 32 to both processes:
    # every refusal is an early one.
    i = 0
    while sent < limit:
        n = min(burst, limit - sent)
        await asyncio.gather(*(one(limiters[i % 2]) for _ in range(n)))
        i += 1
    for lim in limiters:
        await lim.aclose()
    rate = refused / limit
    print(f"early refusals: {refused} of {limit} ({rate:.2%}) with 2 processes")
    assert int(sync.get(counter) or 0) <= limit  # never over the limit
    assert rate <= 2 * 0.015  # the documented bound: 1.5 % of the limit per process


async def test_concurrency_slot_lives_as_long_as_its_request(redis: RedisServer) -> None:
    import asyncio

    from redis.asyncio import Redis
    from xrouter_router.errors import APIError
    from xrouter_router.ledger.limits import Limiter
    from xrouter_router.metrics import Metrics

    key = KeyInfo("slots", "0" * 64, Limits(max_concurrent=1))

    def limiter() -> Limiter:  # slot TTL 0.6 s: far shorter than the request below
        return Limiter(Redis.from_url(redis.url), "open", Metrics(), 0.6, lambda _: 0.0, slot_grace=0)

    a, b = limiter(), limiter()
    lease = await a.acquire(key, "long-request")
    assert lease is not None
    await asyncio.sleep(2.5)  # retries and fallbacks: the request runs past its TTL
    with pytest.raises(APIError) as e:
        await b.acquire(key, "other")
    assert e.value.status == 429 and e.value.code == "concurrency_limit_exceeded"
    a.settle(lease, 0)
    await asyncio.sleep(0.2)  # the release rides on the next batch
    held = await b.acquire(key, "other")
    assert held is not None
    # A replica that dies holding a slot (no settle, no heartbeat) frees it after the TTL.
    await b.aclose()
    with pytest.raises(APIError):
        await a.acquire(key, "third")
    await asyncio.sleep(1.0)
    assert await a.acquire(key, "third") is not None
    await a.aclose()


async def test_set_redis_moves_the_limits_to_the_new_url(redis: RedisServer) -> None:
    import redis as redis_lib
    from redis.asyncio import Redis
    from xrouter_router.errors import APIError
    from xrouter_router.ledger.limits import Limiter
    from xrouter_router.metrics import Metrics

    avoid_minute_boundary()
    other = RedisServer()  # where the rotated redis.url points
    other.start()
    try:
        key = KeyInfo("moved", "0" * 64, Limits(rpm=3))
        metrics = Metrics()
        lim = Limiter(Redis.from_url(redis.url), "closed", metrics, 60, lambda _: 0.0)
        await lim.acquire(key, "a")
        lim.set_redis(Redis.from_url(other.url))
        for rid in ("b", "c", "d"):
            await lim.acquire(key, rid)  # a fresh counter: 3 more fit
        with pytest.raises(APIError):
            await lim.acquire(key, "e")

        def counted(url: str) -> list[bytes | None]:
            r = redis_lib.Redis.from_url(url)
            return [r.get(k) for k in r.keys("xr:{moved}:rpm:*")]

        assert counted(redis.url) == [b"1"] and counted(other.url) == [b"3"]
        assert metrics.registry.get_sample_value("xrouter_redis_up") == 1
        await lim.aclose()
    finally:
        other.stop()


async def test_tpm_reserves_each_requests_tokens_before_the_call(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, redis: RedisServer
) -> None:
    import asyncio

    avoid_minute_boundary(20)
    config = _limited(provider, tmp_path, tpm=1000)
    config["models"].append({"name": "slowgpt", "targets": [{"provider": "fake", "model": "slow-300"}]})
    router = start_router(config, {"TEST_REDIS_URL": redis.url})
    prompt = " ".join(["word"] * 400)  # about 400 tokens a request, as the fake counts them
    body = {"model": "slowgpt", "max_tokens": 20, "messages": [{"role": "user", "content": prompt}]}
    headers = {"authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(timeout=30) as http:
        answers = await asyncio.gather(
            *(http.post(router.url + "/v1/chat/completions", json=body, headers=headers) for _ in range(20))
        )
    used = [r.json()["usage"]["total_tokens"] for r in answers if r.status_code == 200]
    assert {r.status_code for r in answers} == {200, 429}
    # 20 arrived at once: only those whose reservations fit under 1000 went upstream;
    # the window passes the limit by at most one request's reservation.
    reservation = 2 * (len(prompt) + 200) // 4 + 20  # generous: the body's size estimate
    assert sum(used) <= 1000 + reservation, used
