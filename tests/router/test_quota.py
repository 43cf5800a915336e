"""Quota-aware routing: a fake upstream (``ScriptedUpstream``'s ``quota-<n>``) that
counts its quota down in its headers, as OpenAI's does, and answers 429 once it is spent. The router moves
traffic off it before any 429 reaches a client, on every replica (through Redis), and
a ``retry-after`` keeps it away until then."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from xrouter_router.breaker import Breaker
from xrouter_router.quota import observe, skip_for
from xrouter_router.routing import TargetState

from .conftest import StartRouter, client
from .servers import RedisServer, ScriptedUpstream

MSG: Any = [{"role": "user", "content": "quota?"}]


def _config(url: str, tmp: Path, first: str, redis: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "providers": [
            {"name": "a", "type": "openai-compatible", "baseUrl": url, "maxRetries": 0},
            {"name": "b", "type": "openai-compatible", "baseUrl": url, "maxRetries": 0},
        ],
        # Weights make "a" the first choice of nearly every request.
        "models": [
            {
                "name": "m",
                "targets": [
                    {"provider": "a", "model": first, "weight": 1000},
                    {"provider": "b", "model": "spare", "weight": 1},
                ],
            }
        ],
        "keys": [{"name": "alpha", "secret": {"env": "KEY_ALPHA"}}],
        "database": {"spillDir": str(tmp / "spill")},
    }
    if redis:
        config["redis"] = {"url": {"env": "TEST_REDIS_URL"}}
    return config


def test_traffic_leaves_a_target_at_zero_before_any_429(
    scripted: ScriptedUpstream, start_router: StartRouter, tmp_path: Path
) -> None:
    router = start_router(_config(scripted.url, tmp_path, "quota-3"))
    answers = [
        client(router).chat.completions.create(model="m", messages=MSG).choices[0].message.content
        for _ in range(12)
    ]
    assert scripted.stats["quota-3"] == 3 and scripted.refused["quota-3"] == 0
    assert answers.count("ok") >= 9


def test_retry_after_keeps_a_target_away(
    scripted: ScriptedUpstream, start_router: StartRouter, tmp_path: Path
) -> None:
    router = start_router(_config(scripted.url, tmp_path, "quota-0"))
    for _ in range(8):
        assert (
            client(router).chat.completions.create(model="m", messages=MSG).choices[0].message.content == "ok"
        )
    assert scripted.refused["quota-0"] == 1  # the first 429 failed over; retry-after 30 s keeps the rest away


def test_replicas_share_exhaustion_through_redis(
    scripted: ScriptedUpstream, start_router: StartRouter, tmp_path: Path, redis: RedisServer
) -> None:
    env = {"TEST_REDIS_URL": redis.url}
    one = start_router(_config(scripted.url, tmp_path / "one", "quota-2", redis.url), env)
    two = start_router(_config(scripted.url, tmp_path / "two", "quota-2", redis.url), env)
    for _ in range(3):
        client(one).chat.completions.create(model="m", messages=MSG)
    assert scripted.stats["quota-2"] == 2
    time.sleep(1.2)  # two reads the marks every 0.5 s
    for _ in range(8):
        assert client(two).chat.completions.create(model="m", messages=MSG).choices[0].message.content == "ok"
    assert scripted.stats["quota-2"] == 2 and scripted.refused["quota-2"] == 0


def test_headers_are_read_as_each_provider_writes_them() -> None:
    now = time.time()
    soon = (
        (dt.datetime.fromtimestamp(now, dt.UTC) + dt.timedelta(seconds=42)).isoformat().replace("+00:00", "Z")
    )
    anthropic = {"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": soon}
    assert skip_for(200, anthropic, now) == pytest.approx(42, abs=1)
    assert skip_for(200, {"anthropic-ratelimit-tokens-remaining": "5000"}, now) is None
    assert (
        skip_for(200, {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"}, now) == 360
    )
    assert (
        skip_for(200, {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20ms"}, now)
        == 0.02
    )
    assert skip_for(429, {"retry-after": "7"}, now) == 7
    assert skip_for(429, {"retry-after-ms": "1500"}, now) == 1.5
    assert skip_for(200, {"x-ratelimit-remaining-requests": "12"}, now) is None


def test_an_answer_marks_its_target_whatever_the_header_case() -> None:
    """``observe`` reads the answer's headers in one pass: names in any case, a repeated
    header as its values joined (as httpx's ``get`` gives it), nothing for an answer
    without quota headers."""
    target = TargetState("a", "m", Breaker(5, 30.0, 30.0))
    observe(target, 200, httpx.Headers({"Content-Type": "application/json", "X-Request-Id": "r"}))
    assert target.quota_until == 0.0
    headers = httpx.Headers([("X-RateLimit-Remaining-Requests", "0"), ("X-RateLimit-Reset-Requests", "20s")])
    observe(target, 200, headers)
    assert target.quota_until == pytest.approx(time.time() + 20, abs=1)
    twice = TargetState("b", "m", Breaker(5, 30.0, 30.0))
    observe(twice, 429, httpx.Headers([("Retry-After", "5"), ("retry-after", "9")]))
    assert twice.quota_until == 0.0  # "5, 9" reads as no time at all, as it did through get()
