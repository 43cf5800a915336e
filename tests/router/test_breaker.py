"""The circuit breaker, alone and in the router with retries and failover."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openai
import pytest
from xrouter_router.breaker import CLOSED, HALF_OPEN, OPEN, Breaker

from .conftest import StartRouter, base_config, client
from .servers import FakeProvider, ScriptedUpstream

MSG: Any = [{"role": "user", "content": "hi"}]


def _fail(b: Breaker) -> None:
    ticket = b.admit()
    assert ticket is not None
    b.failure(ticket)


def test_breaker_opens_probes_and_closes() -> None:
    now = [0.0]
    b = Breaker(threshold=3, window=10, cooldown=5, clock=lambda: now[0])
    for _ in range(2):
        _fail(b)
    assert b.state == CLOSED and b.admit() is not None
    _fail(b)
    assert b.state == OPEN and b.admit() is None
    now[0] = 6
    assert b.state == HALF_OPEN
    probe = b.admit()
    assert probe is not None and b.admit() is None  # one probe at a time
    b.failure(probe)
    assert b.state == OPEN
    now[0] = 12
    probe = b.admit()
    assert probe is not None
    b.success(probe)
    assert b.state == CLOSED


def test_failures_outside_the_window_do_not_count() -> None:
    now = [0.0]
    b = Breaker(threshold=2, window=1, cooldown=5, clock=lambda: now[0])
    _fail(b)
    now[0] = 2
    _fail(b)
    assert b.state == CLOSED


def test_a_late_success_does_not_close_an_open_breaker() -> None:
    """A request admitted while closed that succeeds after the breaker opened (it
    was slow; others failed meanwhile) says nothing about the target now."""
    now = [0.0]
    b = Breaker(threshold=2, window=10, cooldown=5, clock=lambda: now[0])
    slow = b.admit()
    assert slow is not None
    _fail(b)
    _fail(b)
    assert b.state == OPEN
    b.success(slow)
    assert b.state == OPEN and b.admit() is None
    now[0] = 6
    probe = b.admit()
    assert probe is not None
    b.success(slow)  # still not the probe's verdict
    assert b.state == HALF_OPEN and b.admit() is None
    b.success(probe)
    assert b.state == CLOSED


def test_only_the_probe_ends_half_open() -> None:
    """Releases and failures of requests other than the probe neither free the probe's
    slot (so a second probe could start) nor re-open the breaker."""
    now = [0.0]
    b = Breaker(threshold=1, window=10, cooldown=5, clock=lambda: now[0])
    old = b.admit()
    assert old is not None
    _fail(b)
    now[0] = 6
    probe = b.admit()
    assert probe is not None
    b.release(old)  # e.g. that older request's client went away
    assert b.admit() is None  # still exactly one probe
    b.failure(old)
    assert b.state == HALF_OPEN
    b.release(probe)  # the probe ended without a verdict: the next request probes
    second = b.admit()
    assert second is not None and b.admit() is None
    b.failure(second)
    assert b.state == OPEN and b.admit() is None


def _config(provider: FakeProvider, tmp: Path) -> dict[str, Any]:
    config = base_config(
        provider.url,
        tmp,
        breaker={"failureThreshold": 2, "windowSeconds": 30, "cooldownSeconds": 1},
        retry={"baseDelaySeconds": 0.01, "maxDelaySeconds": 2},
    )
    config["models"] = [m for m in config["models"] if m["name"] == "echo"] + [
        {
            "name": "main",
            "targets": [
                {"provider": "fake", "model": "fail", "weight": 1},
                {"provider": "fake", "model": "good", "weight": 0},
            ],
        },
        {"name": "broken", "fallbacks": ["backup"], "targets": [{"provider": "fake2", "model": "fail"}]},
        {"name": "backup", "targets": [{"provider": "fake2", "model": "backup-ok"}]},
        {"name": "flaky", "targets": [{"provider": "fake", "model": "flaky-1"}]},
        {"name": "limited", "targets": [{"provider": "fake", "model": "ratelimit-1"}]},
        {"name": "dead", "targets": [{"provider": "fake2", "model": "fail"}]},
    ]
    return config


def test_retry_then_success(start_router: StartRouter, provider: FakeProvider, tmp_path: Path) -> None:
    router = start_router(_config(provider, tmp_path))
    out = client(router).chat.completions.create(model="flaky", messages=MSG)
    assert out.choices[0].message.content == "hi"
    assert provider.stats()["flaky-1"] == 2
    assert router.metric("xrouter_retries_total", model="flaky") == 1


def test_429_retry_honours_retry_after(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path
) -> None:
    router = start_router(_config(provider, tmp_path))
    raw = client(router).chat.completions.with_raw_response.create(model="limited", messages=MSG)
    assert raw.parse().choices[0].message.content == "hi"
    assert provider.stats()["ratelimit-1"] == 2
    assert raw.elapsed.total_seconds() >= 0.9  # waited the upstream's Retry-After: 1


def test_failover_breaker_and_fallback(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path
) -> None:
    router = start_router(_config(provider, tmp_path))
    c = client(router)
    # Target "fail" is retried (maxRetries 2), then the route fails over to "good".
    assert c.chat.completions.create(model="main", messages=MSG).choices[0].message.content == "hi"
    assert provider.stats()["fail"] == 2  # the breaker (threshold 2) opened before the third try
    assert router.metric("xrouter_breaker_state", provider="fake", upstream_model="fail") == 2
    # With the breaker open the failing target is skipped outright.
    assert c.chat.completions.create(model="main", messages=MSG).choices[0].message.content == "hi"
    assert provider.stats()["fail"] == 2
    # A model whose targets all fail falls back to the next model.
    assert c.chat.completions.create(model="broken", messages=MSG).choices[0].message.content == "hi"
    assert provider.stats()["backup-ok"] == 1
    assert router.metric("xrouter_fallbacks_total", model="broken") == 1


def test_all_down_is_502_then_503(start_router: StartRouter, provider: FakeProvider, tmp_path: Path) -> None:
    router = start_router(_config(provider, tmp_path))
    c = client(router)
    with pytest.raises(openai.InternalServerError) as e:
        c.chat.completions.create(model="dead", messages=MSG)
    assert e.value.status_code == 502
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.create(model="dead", messages=MSG)
    # Two failures opened the breaker: no upstream left, 503 without calling it.
    calls = provider.stats()["fail"]
    with pytest.raises(openai.InternalServerError) as e:
        c.chat.completions.create(model="dead", messages=MSG)
    assert e.value.status_code == 503
    assert provider.stats()["fail"] == calls
    assert router.metric("xrouter_requests_total", model="dead", status="503") == 1


def test_fallbacks_respect_allowed_models(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path
) -> None:
    config = _config(provider, tmp_path)
    config["keys"].append(
        {"name": "cheap", "secret": {"env": "KEY_CHEAP"}, "limits": {"allowedModels": ["broken"]}}
    )
    router = start_router(config, {"KEY_CHEAP": "sk-test-cheap"})
    # "broken" fails and falls back to "backup", which this key may not use: the
    # client gets the failure, and the fallback is never called on its behalf.
    with pytest.raises(openai.InternalServerError) as e:
        client(router, "sk-test-cheap").chat.completions.create(model="broken", messages=MSG)
    assert e.value.status_code == 502
    assert provider.stats().get("backup-ok", 0) == 0
    # A key that may use both still gets the fallback's answer.
    assert (
        client(router).chat.completions.create(model="broken", messages=MSG).choices[0].message.content
        == "hi"
    )
    assert provider.stats()["backup-ok"] == 1


def test_a_long_probe_stream_does_not_keep_the_breaker_half_open(
    start_router: StartRouter, scripted: ScriptedUpstream, tmp_path: Path
) -> None:
    config = base_config(
        scripted.url,
        tmp_path,
        breaker={"failureThreshold": 2, "windowSeconds": 30, "cooldownSeconds": 1},
        providers=[{"name": "s", "type": "openai", "baseUrl": scripted.url, "maxRetries": 0}],
        models=[{"name": "long", "targets": [{"provider": "s", "model": "trickle-1500"}]}],
        keys=[{"name": "alpha", "secret": {"env": "KEY_ALPHA"}}],
    )
    router = start_router(config)
    c = client(router)
    scripted.failing.add("trickle-1500")
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            c.chat.completions.create(model="long", messages=MSG)
    assert router.metric("xrouter_breaker_state", provider="s", upstream_model="trickle-1500") == 2
    scripted.failing.clear()  # the target recovers
    time.sleep(1.2)  # the cooldown: the next request is the probe
    probe = c.chat.completions.create(model="long", messages=MSG, stream=True)
    first = next(iter(probe))  # the probe's answer has begun; it runs ~4.5 s more
    assert first.choices[0].delta.content == "one"
    # Meanwhile the recovered target serves others instead of "circuit open" (503).
    other = c.chat.completions.create(model="long", messages=MSG, stream=True)
    assert "".join(ch.choices[0].delta.content or "" for ch in other if ch.choices) == "one two three four"
    probe.close()
    assert router.metric("xrouter_breaker_state", provider="s", upstream_model="trickle-1500") == 0
