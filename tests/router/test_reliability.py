"""Proxy-side reliability (issue 10, router items 1, 7, 9, 10, 11), through a real
router process and the real ``openai`` SDK: adapter errors, the top-level boundary,
the breaker in the loop, latency of fallback targets, a provider refusing the
router's credential, and ``firstByte`` vs ``streamIdle``."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .conftest import KEY, StartRouter, base_config, client, db_config
from .servers import FakeProvider, Postgres, Router, ScriptedUpstream

MSG: Any = [{"role": "user", "content": "hi"}]
AUTH = {"authorization": f"Bearer {KEY}"}


def _config(
    provider: FakeProvider, scripted: ScriptedUpstream, tmp: Path, **timeouts: float
) -> dict[str, Any]:
    config = base_config(
        provider.url,
        tmp,
        breaker={"failureThreshold": 2, "windowSeconds": 30, "cooldownSeconds": 30},
        retry={"baseDelaySeconds": 0.01, "maxDelaySeconds": 1},
    )
    config["providers"].append(
        {
            "name": "scripted",
            "type": "openai-compatible",
            "baseUrl": scripted.url + "/v1",
            "apiKey": {"env": "FAKE_API_KEY"},
            "maxRetries": 2,
            "timeouts": {"connect": 1, "firstByte": 5, "total": 10, **timeouts},
        }
    )
    good = {"provider": "fake", "model": "good", "weight": 0}
    config["models"] += [
        {"name": "garbage", "targets": [{"provider": "scripted", "model": "garbage"}, good]},
        {"name": "garbage-only", "targets": [{"provider": "scripted", "model": "garbage"}]},
        {"name": "cred", "targets": [{"provider": "scripted", "model": "refuse-401"}, good]},
        {"name": "cred-only", "targets": [{"provider": "scripted", "model": "refuse-403"}]},
        {
            "name": "cred-fallback",
            "fallbacks": ["gpt"],
            "targets": [{"provider": "scripted", "model": "refuse-401"}],
        },
        {"name": "trickle", "targets": [{"provider": "scripted", "model": "trickle-500"}]},
    ]
    return config


@pytest.fixture
def router(
    start_router: StartRouter, provider: FakeProvider, scripted: ScriptedUpstream, tmp_path: Path
) -> Router:
    return start_router(_config(provider, scripted, tmp_path))


# Item 1: errors inside an adapter.


def test_unsupported_content_part_is_a_400_naming_it(router: Router) -> None:
    """The Anthropic adapter cannot express an audio part: the client's request, so a
    400 naming the part (it was a plain-text 500 with a traceback)."""
    messages: Any = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi"}, {"type": "input_audio", "input_audio": {}}],
        }
    ]
    with pytest.raises(openai.BadRequestError) as e:
        client(router).chat.completions.create(model="claude", messages=messages)
    assert e.value.body["param"] == "messages[0].content[1]"  # type: ignore[index]
    assert "unsupported content part" in e.value.message
    assert router.metric("xrouter_requests_total", model="claude", status="400") == 1
    assert "Traceback" not in router.log()


def test_upstream_garbage_is_a_failed_attempt_retried_then_failed_over(
    router: Router, provider: FakeProvider, scripted: ScriptedUpstream
) -> None:
    out = client(router).chat.completions.create(model="garbage", messages=MSG)
    assert out.choices[0].message.content == "hi"  # from the next target
    assert scripted.stats["garbage"] == 2  # tried, retried, then the breaker (threshold 2) opened
    assert provider.stats()["good"] == 1
    with pytest.raises(openai.InternalServerError) as e:
        client(router).chat.completions.create(model="garbage-only", messages=MSG)
    assert e.value.status_code in (502, 503)  # 503 once the breaker is open
    assert "Traceback" not in router.log()


def test_upstream_garbage_alone_is_a_502(
    start_router: StartRouter, provider: FakeProvider, scripted: ScriptedUpstream, tmp_path: Path
) -> None:
    config = _config(provider, scripted, tmp_path)
    config["breaker"]["failureThreshold"] = 100
    router = start_router(config)
    with pytest.raises(openai.InternalServerError) as e:
        client(router).chat.completions.create(model="garbage-only", messages=MSG)
    assert e.value.status_code == 502
    assert e.value.body["message"] == "upstream scripted sent invalid JSON"  # type: ignore[index]
    assert scripted.stats["garbage"] == 3  # maxRetries 2


# Item 1: one top-level boundary.


def test_anything_unexpected_is_an_openai_500_with_the_request_id(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, provider: FakeProvider, tmp_path: Path
) -> None:
    """A bug (here: validation blowing up with a credential in its message) becomes an
    OpenAI-shaped 500 with the request id; the log line names the error's type and
    place, never its message."""
    from xrouter_router import logs, validate
    from xrouter_router.app import create_app
    from xrouter_router.config import RouterConfig

    def broken(body: bytes, kind: str) -> dict[str, Any]:
        raise RuntimeError("could not use sk-upstream-secret")

    for name, value in {"FAKE_API_KEY": "sk-upstream-secret", "KEY_ALPHA": KEY, "KEY_BETA": "sk-b"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(validate, "parse", broken)
    app = create_app(RouterConfig.model_validate(base_config(provider.url, tmp_path)))

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://router") as c:
            return await c.post("/v1/chat/completions", headers=AUTH, json={"model": "gpt", "messages": MSG})

    with caplog.at_level(logging.ERROR, logger="xrouter.app"):
        r = asyncio.run(go())
    assert r.status_code == 500
    rid = r.headers["x-request-id"]
    err = r.json()["error"]
    assert err["type"] == "internal_error" and rid in err["message"]
    assert "sk-upstream-secret" not in r.text
    [record] = [rec for rec in caplog.records if rec.name == "xrouter.app"]
    line = logs.JSONFormatter().format(record)
    assert json.loads(line)["request_id"] == rid and "RuntimeError" in line
    assert "sk-upstream-secret" not in line


def test_a_crash_inside_an_llm_request_is_still_counted(
    monkeypatch: pytest.MonkeyPatch, provider: FakeProvider, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    """A bug before the upstream call (validation) and one inside the attempt (the
    adapter): each is the boundary's 500, and still shows in the request metrics and
    as a usage row with status 500."""
    from xrouter_router import validate
    from xrouter_router.app import create_app
    from xrouter_router.config import RouterConfig
    from xrouter_router.providers.mock import MockAdapter

    pg, name = database
    parse = validate.parse

    def fragile(body: bytes, kind: str) -> dict[str, Any]:
        if b"explode-early" in body:
            raise RuntimeError("validation bug")
        return parse(body, kind)

    async def broken_open(
        self: MockAdapter, kind: str, payload: Any, upstream_model: str, stream: bool
    ) -> httpx.Response:
        if not stream:
            raise RuntimeError("adapter bug")

        async def half() -> Any:  # a stream that has started, then a bug
            async for chunk in self.stream(payload, upstream_model):
                yield chunk
                raise RuntimeError("adapter bug mid-stream")

        return httpx.Response(200, content=half())

    env = {"FAKE_API_KEY": "x", "KEY_ALPHA": KEY, "KEY_BETA": "sk-b", "TEST_DATABASE_URL": pg.dsn(name)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(validate, "parse", fragile)
    monkeypatch.setattr(MockAdapter, "open", broken_open)
    app = create_app(RouterConfig.model_validate(db_config(provider.url, tmp_path)))

    async def go() -> tuple[list[httpx.Response], str]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://router") as c:
                late = await c.post(
                    "/v1/chat/completions", headers=AUTH, json={"model": "echo", "messages": MSG}
                )
                early = await c.post(
                    "/v1/chat/completions",
                    headers=AUTH,
                    json={"model": "gpt", "messages": [{"role": "user", "content": "explode-early"}]},
                )
                streamed = await c.post(
                    "/v1/chat/completions",
                    headers=AUTH,
                    json={"model": "echo", "messages": MSG, "stream": True},
                )
                metrics = (await c.get("/metrics")).text
        return [late, early, streamed], metrics  # leaving the lifespan flushed the usage rows

    (late, early, streamed), metrics = asyncio.run(go())
    assert late.status_code == early.status_code == 500
    assert streamed.status_code == 200 and b"[DONE]" not in streamed.content  # cut short
    assert 'xrouter_requests_total{model="echo",provider="mock",status="500"} 2.0' in metrics
    assert 'xrouter_requests_total{model="echo",provider="mock",status="200"}' not in metrics
    assert 'xrouter_requests_total{model="unknown",provider="none",status="500"} 1.0' in metrics
    ids = "', '".join(r.headers["x-request-id"] for r in (late, early, streamed))
    rows = pg.sql(
        f"SELECT request_id, key_name, model, status FROM xrouter_usage WHERE request_id IN ('{ids}')",
        name,
    )
    assert sorted(rows.split()) == sorted(
        [
            f"{late.headers['x-request-id']}|alpha|echo|500",
            f"{early.headers['x-request-id']}|alpha|unknown|500",
            f"{streamed.headers['x-request-id']}|alpha|echo|500",
        ]
    )


# Item 10: the provider refuses the router's credential.


def test_provider_credential_refusal_fails_over(
    router: Router, provider: FakeProvider, scripted: ScriptedUpstream
) -> None:
    out = client(router).chat.completions.create(model="cred", messages=MSG)
    assert out.choices[0].message.content == "hi"
    assert scripted.stats["refuse-401"] == 1  # not retried (maxRetries 2): the next target at once
    assert provider.stats()["good"] == 1
    out = client(router).chat.completions.create(model="cred-fallback", messages=MSG)
    assert out.choices[0].message.content == "hi"
    assert router.metric("xrouter_fallbacks_total", model="cred-fallback") == 1


def test_provider_credential_refusal_is_a_502_counted_on_the_breaker(
    router: Router, scripted: ScriptedUpstream
) -> None:
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as e:
            client(router).chat.completions.create(model="cred-only", messages=MSG)
        # Not a 401/403: the client's own key is fine.
        assert e.value.status_code == 502
        assert "refused the router's credential for provider scripted" in e.value.message
        assert "sk-upstream-secret" not in str(e.value.body)
    assert router.metric("xrouter_breaker_state", provider="scripted", upstream_model="refuse-403") == 2
    with pytest.raises(openai.InternalServerError) as e:
        client(router).chat.completions.create(model="cred-only", messages=MSG)
    assert e.value.status_code == 503
    assert scripted.stats["refuse-403"] == 2
    assert "sk-upstream-secret" not in router.log()


# Item 9: latency per actual target.


def test_latency_is_learnt_for_fallback_targets(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path
) -> None:
    """``fast`` is only ever reached as a fallback. Its latency strategy can only pick
    the quick target if the latencies of fallback attempts are recorded."""
    config = base_config(provider.url, tmp_path, breaker={"failureThreshold": 1000})
    config["models"] += [
        {"name": "primary", "fallbacks": ["fast"], "targets": [{"provider": "fake2", "model": "fail"}]},
        {
            "name": "fast",
            "strategy": "latency",
            "targets": [{"provider": "fake", "model": "slow-300"}, {"provider": "fake", "model": "quick"}],
        },
    ]
    router = start_router(config)
    c = client(router)
    for _ in range(20):
        assert c.chat.completions.create(model="primary", messages=MSG).choices[0].message.content == "hi"
    # Once each has been measured, the quick one wins every time (random would be ~10).
    assert provider.stats()["slow-300"] <= 2


# Item 11: firstByte and streamIdle.


def test_first_byte_does_not_limit_the_gaps_in_a_stream(
    start_router: StartRouter, provider: FakeProvider, scripted: ScriptedUpstream, tmp_path: Path
) -> None:
    """firstByte 0.3 s; the stream starts at once and then pauses 0.5 s between
    events: it must complete (firstByte used to apply between every chunk)."""
    router = start_router(_config(provider, scripted, tmp_path, firstByte=0.3))
    chunks = list(client(router).chat.completions.create(model="trickle", messages=MSG, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three four"


def test_stream_idle_ends_a_silent_stream(
    start_router: StartRouter, provider: FakeProvider, scripted: ScriptedUpstream, tmp_path: Path
) -> None:
    router = start_router(_config(provider, scripted, tmp_path, streamIdle=0.2))
    with httpx.stream(
        "POST",
        router.url + "/v1/chat/completions",
        headers=AUTH,
        json={"model": "trickle", "messages": MSG, "stream": True},
        timeout=10,
    ) as resp:
        assert resp.status_code == 200
        body = b"".join(resp.iter_raw())
    assert b'"content": "one"' in body or b'"content":"one"' in body
    assert b"two" not in body
    assert body.endswith(b'data: {"error":{"message":"upstream timed out","type":"timeout_error"}}\n\n')
    assert router.metric("xrouter_requests_total", model="trickle", status="504") == 1
