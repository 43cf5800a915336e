"""Hot-path shortcuts keep their observable behaviour: the direct access-log write is
byte for byte the formatter's line, and token counts batched for Redis all arrive."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from xrouter_router import logs
from xrouter_router.auth import KeyInfo
from xrouter_router.config import Limits
from xrouter_router.ledger.limits import SETTLE_INTERVAL, Limiter
from xrouter_router.metrics import Metrics

from .conftest import KEY, StartRouter, base_config
from .servers import FakeProvider, RedisServer, free_port

MSG: Any = [{"role": "user", "content": "hi"}]

FIELDS: dict[str, Any] = {
    "request_id": "abc",
    "key": "k",
    "model": "gpt",
    "provider": "fake",
    "upstream_model": None,
    "status": 200,
    "stream": False,
    "latency_ms": 1.5,
    "overhead_ms": 0.25,
    "prompt_tokens": 3,
    "completion_tokens": 4,
}


def test_direct_access_line_matches_formatter(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logs.setup("INFO")
        monkeypatch.setattr(time, "time", lambda: 1700000000.1234)
        logs.access(**FIELDS)
        direct = capsys.readouterr().out
        monkeypatch.setattr(logs, "_direct", None)  # through logging and the formatter
        logs.access(**FIELDS)
        formatted = capsys.readouterr().out
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("uvicorn.access").disabled = False
    assert direct.count("\n") == 1
    assert direct == formatted


def test_direct_access_line_respects_level(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logs.setup("WARNING")
        logs.access(**FIELDS)
        out = capsys.readouterr().out
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("uvicorn.access").disabled = False
    assert out == ""


def test_token_settles_are_batched_and_all_reach_redis(redis: RedisServer) -> None:
    async def scenario() -> tuple[int, int, int]:
        client = Redis.from_url(redis.url)
        limiter = Limiter(client, "open", Metrics(), 10.0, lambda name: 0.0)
        key = KeyInfo("batched", "0" * 64, Limits(rpm=100_000, tpm=10_000_000))
        probe = Redis.from_url(redis.url)

        async def tpm() -> int:
            keys = await probe.keys("xr:{batched}:tpm:*")
            total = 0
            for k in keys:
                total += int(await probe.get(k) or 0)
            return total

        # The local TPM view is per minute window: don't straddle a minute boundary.
        if time.time() % 60 > 55:
            await asyncio.sleep(60 - time.time() % 60 + 0.1)
        for _ in range(5):
            lease = await limiter.acquire(key, "rid")
            assert lease is not None
            limiter.settle(lease, 10)
        await asyncio.sleep(SETTLE_INTERVAL * 4)
        after_interval = await tpm()
        for _ in range(7):
            lease = await limiter.acquire(key, "rid")
            assert lease is not None
            limiter.settle(lease, 1)
        await limiter.aclose()  # sends what is pending
        after_close = await tpm()
        blocks_used = limiter.blocks["batched"].tpm_used
        await probe.aclose()
        return after_interval, after_close, blocks_used

    after_interval, after_close, local = asyncio.run(scenario())
    assert after_interval == 50
    assert after_close == 57
    assert local >= 57


def test_upstream_errors_read_as_before(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path
) -> None:
    """The upstream client's failures map to statuses by what happened: an unreachable
    upstream a 502 (httpx-aiohttp reads a refused connection as ConnectTimeout;
    clients.py tells it apart), a first byte later than ``firstByte`` a 504 (in about
    ``firstByte``, not the upstream's 2 s)."""
    config = base_config(provider.url, tmp_path)
    config["providers"] += [
        {
            "name": "nowhere",
            "type": "openai",
            "baseUrl": f"http://127.0.0.1:{free_port()}/v1",
            "maxRetries": 0,
        },
        {
            "name": "impatient",
            "type": "openai",
            "baseUrl": provider.url + "/v1",
            "maxRetries": 0,
            "timeouts": {"connect": 1, "firstByte": 0.3, "total": 5},
        },
    ]
    config["models"] += [
        {"name": "nowhere", "targets": [{"provider": "nowhere", "model": "gpt-up"}]},
        {"name": "impatient", "targets": [{"provider": "impatient", "model": "slow-2000"}]},
    ]
    router = start_router(config)
    auth = {"authorization": f"Bearer {KEY}"}
    url = router.url + "/v1/chat/completions"
    r = httpx.post(url, headers=auth, json={"model": "nowhere", "messages": MSG}, timeout=10)
    assert r.status_code == 502
    assert r.json()["error"]["message"] == "upstream nowhere is unreachable: ConnectError"
    began = time.monotonic()
    r = httpx.post(url, headers=auth, json={"model": "impatient", "messages": MSG}, timeout=10)
    assert r.status_code == 504
    assert "upstream impatient timed out" in r.json()["error"]["message"]
    assert time.monotonic() - began < 1.5
    ok = httpx.post(url, headers=auth, json={"model": "gpt", "messages": MSG}, timeout=10)
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "hi"


def test_requests_in_flight_are_not_walked_by_the_gc_again_and_again(
    monkeypatch: pytest.MonkeyPatch, provider: FakeProvider, tmp_path: Path
) -> None:
    """32 requests at a time hold a few thousand young objects between them, nearly all
    freed by reference counting. After start-up the GC's youngest generation must not
    walk them several times a request (Python's default threshold did: about 5 % of the
    router's CPU at 32 connections; docs/router-performance.md)."""
    from xrouter_router.app import create_app
    from xrouter_router.config import RouterConfig

    for name, value in {"FAKE_API_KEY": "sk-up", "KEY_ALPHA": KEY, "KEY_BETA": "sk-b"}.items():
        monkeypatch.setenv(name, value)
    app = create_app(RouterConfig.model_validate(base_config(provider.url, tmp_path)))
    young: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 0:
            young.append(1)

    async def go() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://router") as c:

                async def one() -> None:
                    r = await c.post(
                        "/v1/chat/completions",
                        headers={"authorization": f"Bearer {KEY}"},
                        json={"model": "gpt", "messages": MSG},
                    )
                    assert r.status_code == 200

                await asyncio.gather(*(one() for _ in range(32)))  # warm: pools, caches
                gc.callbacks.append(count)
                try:
                    for _ in range(5):
                        await asyncio.gather(*(one() for _ in range(32)))
                finally:
                    gc.callbacks.remove(count)

    saved = gc.get_threshold()
    try:
        asyncio.run(go())
    finally:
        gc.set_threshold(*saved)
    assert len(young) <= 16  # 160 requests: at most one young collection per ten
