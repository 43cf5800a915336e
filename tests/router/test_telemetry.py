"""OpenTelemetry traces to a real OTLP/HTTP receiver: a server span per request and a
client span per upstream attempt with the GenAI attributes, the incoming traceparent
continued, no content unless telemetry.captureContent; off (the tracing SDK not even
imported) without an OTLP endpoint."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import KEY, StartRouter, base_config, client
from .otlp import OTLPReceiver, Span
from .servers import FakeProvider, Router

MSG: Any = [{"role": "user", "content": "trace this secret prompt"}]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT}-01"


@pytest.fixture
def otlp() -> Iterator[OTLPReceiver]:
    receiver = OTLPReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


def _router(
    start_router: StartRouter, provider: FakeProvider, tmp: Path, otlp: OTLPReceiver, **extra: Any
) -> Router:
    config = base_config(provider.url, tmp, **extra)
    config["models"].append(
        {
            "name": "failover",
            "targets": [
                {"provider": "fake2", "model": "fail"},
                {"provider": "fake", "model": "gpt-up", "weight": 0},
            ],
        }
    )
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_SERVICE_NAME": "xr-test",
    }
    return start_router(config, env)


def _by_kind(spans: list[Span]) -> tuple[Span, list[Span]]:
    servers = [s for s in spans if s.kind == 2]
    assert len(servers) == 1, spans
    return servers[0], [s for s in spans if s.kind == 3]


def test_request_and_attempt_spans_carry_genai_attributes_and_continue_the_trace(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, otlp: OTLPReceiver
) -> None:
    router = _router(start_router, provider, tmp_path, otlp)
    reply = client(router).chat.completions.create(
        model="gpt", messages=MSG, temperature=0.2, extra_headers={"traceparent": TRACEPARENT}
    )
    server, clients = _by_kind(otlp.wait(2))
    assert server.trace_id == TRACE_ID and server.parent_span_id == PARENT
    assert server.name == "chat gpt"
    assert server.resource["service.name"] == "xr-test"
    a = server.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.system"] == "openai"
    assert a["gen_ai.request.model"] == "gpt"
    assert a["gen_ai.response.model"] == reply.model == "gpt-up"
    assert a["gen_ai.request.temperature"] == 0.2
    assert reply.usage is not None
    assert a["gen_ai.usage.input_tokens"] == reply.usage.prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == reply.usage.completion_tokens
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["http.response.status_code"] == 200
    (attempt,) = clients
    assert attempt.trace_id == TRACE_ID and attempt.parent_span_id == server.span_id
    assert attempt.name == "chat gpt-up"
    assert attempt.attributes["gen_ai.request.model"] == "gpt-up"
    assert attempt.attributes["gen_ai.response.model"] == "gpt-up"
    assert attempt.attributes["xrouter.provider"] == "fake"
    # No content without captureContent, anywhere.
    for span in (server, attempt):
        assert "trace this secret prompt" not in repr(span.attributes)
        assert "gen_ai.input.messages" not in span.attributes


def test_one_span_per_attempt_with_the_failed_ones_marked(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, otlp: OTLPReceiver
) -> None:
    router = _router(start_router, provider, tmp_path, otlp)
    client(router).chat.completions.create(model="failover", messages=MSG)
    server, clients = _by_kind(otlp.wait(3))
    assert [c.attributes["gen_ai.request.model"] for c in clients] == ["fail", "gpt-up"]
    failed, answered = clients
    assert failed.status == 2 and failed.attributes["error.type"] == "UpstreamFailure"
    assert failed.attributes["http.response.status_code"] == 502
    assert answered.status != 2 and answered.attributes["http.response.status_code"] == 200
    assert {c.parent_span_id for c in clients} == {server.span_id}
    assert len(server.trace_id) == 32 and server.parent_span_id == ""  # a new trace


def test_capture_content_and_streams_and_anthropic(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, otlp: OTLPReceiver
) -> None:
    router = _router(start_router, provider, tmp_path, otlp, telemetry={"captureContent": True})
    chunks = list(client(router).chat.completions.create(model="claude", messages=MSG, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    server, (attempt,) = _by_kind(otlp.wait(2))
    a = server.attributes
    assert a["gen_ai.system"] == "anthropic" and attempt.attributes["gen_ai.system"] == "anthropic"
    assert a["xrouter.stream"] is True
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.usage.output_tokens"] > 0
    assert "trace this secret prompt" in a["gen_ai.input.messages"]
    assert text and text in a["gen_ai.output.messages"]


def test_refused_requests_get_a_span_too(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, otlp: OTLPReceiver
) -> None:
    router = _router(start_router, provider, tmp_path, otlp)
    import openai

    with pytest.raises(openai.AuthenticationError):
        client(router, "sk-wrong").chat.completions.create(model="gpt", messages=MSG)
    (span,) = otlp.wait(1)
    assert span.kind == 2 and span.attributes["http.response.status_code"] == 401


def test_off_without_an_endpoint_loads_no_tracing_sdk(tmp_path: Path, provider: FakeProvider) -> None:
    """In a clean interpreter: a request through the whole app with no OTEL_* endpoint
    loads neither the tracing SDK nor an exporter."""
    import yaml

    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(base_config(provider.url, tmp_path)))
    script = f"""
import asyncio, os, sys
import httpx
os.environ.update(FAKE_API_KEY="x", KEY_ALPHA="sk-a", KEY_BETA="sk-b", XROUTER_CONFIG={str(config_path)!r})
from xrouter_router.app import create_app
async def main():
    app = create_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as c:
            r = await c.post("/v1/chat/completions", headers={{"authorization": "Bearer sk-a"}},
                             json={{"model": "echo", "messages": [{{"role": "user", "content": "hi"}}]}})
            assert r.status_code == 200, r.text
    assert app.state.xrouter.telemetry is None
    # (redis-py imports the OpenTelemetry API and metrics SDK itself when installed.)
    loaded = [m for m in sys.modules if m.startswith(("opentelemetry.sdk.trace", "opentelemetry.exporter"))]
    assert not loaded, loaded
asyncio.run(main())
print("ok")
"""
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_sampled_out_requests_export_nothing(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, otlp: OTLPReceiver
) -> None:
    router = _router(start_router, provider, tmp_path, otlp)
    # The caller decided not to sample (flags 00): the default sampler follows it.
    client(router).chat.completions.create(
        model="failover", messages=MSG, extra_headers={"traceparent": f"00-{TRACE_ID}-{PARENT}-00"}
    )
    client(router).chat.completions.create(model="gpt", messages=MSG)
    spans = otlp.wait(2)
    assert {s.attributes["gen_ai.request.model"] for s in spans} == {"gpt", "gpt-up"}
    assert all(s.trace_id != TRACE_ID for s in spans)


# The other front doors: /v1/responses and /v1/messages, passed through and translated.


def _answer_attributes(span: Span) -> dict[str, Any]:
    a = span.attributes
    return {k: a.get(k) for k in ("gen_ai.response.model", "gen_ai.response.finish_reasons")}


@pytest.mark.parametrize("model", ["gpt", "echo"])  # passed through; translated
@pytest.mark.parametrize("stream", [False, True])
def test_responses_get_request_and_attempt_spans(
    start_router: StartRouter,
    provider: FakeProvider,
    tmp_path: Path,
    otlp: OTLPReceiver,
    stream: bool,
    model: str,
) -> None:
    router = _router(start_router, provider, tmp_path, otlp, telemetry={"captureContent": True})
    c = client(router)
    kw: Any = {"extra_headers": {"traceparent": TRACEPARENT}, "max_output_tokens": 50}
    if stream:
        with c.responses.stream(model=model, input="trace this secret prompt", **kw) as s:
            list(s)
            out = s.get_final_response()
    else:
        out = c.responses.create(model=model, input="trace this secret prompt", **kw)
    server, (attempt,) = _by_kind(otlp.wait(2))
    assert server.trace_id == TRACE_ID and server.parent_span_id == PARENT
    assert attempt.parent_span_id == server.span_id
    a = server.attributes
    assert server.name == f"chat {model}" and a["xrouter.api"] == "responses"
    assert a["gen_ai.system"] == ("openai" if model == "gpt" else "xrouter.mock")
    assert a["xrouter.stream"] is stream
    assert a["gen_ai.request.max_tokens"] == 50
    assert _answer_attributes(server) == _answer_attributes(attempt)
    assert a["gen_ai.response.model"] == out.model
    assert a["gen_ai.response.id"] == out.id
    assert a["gen_ai.response.finish_reasons"] == ["completed"]
    assert out.usage is not None and a["gen_ai.usage.output_tokens"] == out.usage.output_tokens
    assert "trace this secret prompt" in a["gen_ai.input.messages"]
    assert out.output_text and out.output_text in a["gen_ai.output.messages"]


@pytest.mark.parametrize("model", ["claude", "gpt"])  # passed through; translated
@pytest.mark.parametrize("stream", [False, True])
def test_messages_get_request_and_attempt_spans(
    start_router: StartRouter,
    provider: FakeProvider,
    tmp_path: Path,
    otlp: OTLPReceiver,
    stream: bool,
    model: str,
) -> None:
    import anthropic

    router = _router(start_router, provider, tmp_path, otlp)
    ac = anthropic.Anthropic(base_url=router.url, api_key=KEY, max_retries=0)
    kw: Any = {"model": model, "max_tokens": 64, "messages": MSG}
    if stream:
        with ac.messages.stream(**kw) as s:
            list(s)
            out = s.get_final_message()
    else:
        out = ac.messages.create(**kw)
    server, (attempt,) = _by_kind(otlp.wait(2))
    assert attempt.parent_span_id == server.span_id
    a = server.attributes
    assert server.name == f"chat {model}" and a["xrouter.api"] == "messages"
    assert a["gen_ai.system"] == ("anthropic" if model == "claude" else "openai")
    assert a["gen_ai.request.max_tokens"] == 64
    assert _answer_attributes(server) == _answer_attributes(attempt)
    assert a["gen_ai.response.model"] == out.model
    assert a["gen_ai.response.finish_reasons"] == [out.stop_reason]
    assert a["gen_ai.usage.output_tokens"] == out.usage.output_tokens
    assert "trace this secret prompt" not in repr(a)
