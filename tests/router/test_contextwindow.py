"""Context-window fallbacks: an upstream 400 saying the prompt is too long (OpenAI's and
Azure's ``context_length_exceeded``, Anthropic's "prompt is too long") moves the request
to the route's ``contextWindowFallbacks`` in order; any other 4xx is passed on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openai
import pytest
from xrouter_router.contextwindow import is_context_window_error

from .conftest import StartRouter, client
from .servers import Postgres, ScriptedUpstream

MSG: Any = [{"role": "user", "content": "a very long prompt"}]


def _config(up: ScriptedUpstream, tmp: Path, db: bool = False) -> dict[str, Any]:
    def route(name: str, provider: str, model: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "targets": [{"provider": provider, "model": model}], **extra}

    config: dict[str, Any] = {
        "providers": [
            {"name": "up", "type": "openai-compatible", "baseUrl": up.url + "/v1", "maxRetries": 1},
            {"name": "claude", "type": "anthropic", "baseUrl": up.url, "maxRetries": 1},
            {"name": "azure", "type": "azure-openai", "baseUrl": up.url, "apiVersion": "2024-06-01"},
        ],
        "models": [
            route("small", "up", "ctx-openai", contextWindowFallbacks=["medium", "large"]),
            route("medium", "azure", "ctx-openai"),  # too small as well
            route("large", "up", "large-up"),
            route("claude-small", "claude", "ctx-anthropic", contextWindowFallbacks=["large"]),
            route("azure-small", "azure", "ctx-openai", contextWindowFallbacks=["large"]),
            route("picky", "up", "bad-400", contextWindowFallbacks=["large"], fallbacks=["large"]),
            route("plain", "up", "ctx-openai", fallbacks=["large"]),
            route("nowhere", "up", "ctx-openai", contextWindowFallbacks=["medium"]),
        ],
        "keys": [{"name": "alpha", "secret": {"env": "KEY_ALPHA"}}],
        "prices": {"large-up": {"input": 1.0, "output": 2.0}},
        "database": {"spillDir": str(tmp / "spill"), "flushIntervalSeconds": 0.2},
    }
    if db:
        config["database"]["url"] = {"env": "TEST_DATABASE_URL"}
    return config


def test_too_long_moves_to_the_larger_models_in_order(
    start_router: StartRouter, scripted: ScriptedUpstream, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    router = start_router(_config(scripted, tmp_path, db=True), {"TEST_DATABASE_URL": pg.dsn(name)})
    raw = client(router).chat.completions.with_raw_response.create(model="small", messages=MSG)
    reply = raw.parse()
    assert reply.choices[0].message.content == "ok"
    assert reply.model == "large-up"
    # small refused once (a refusal is not retried), medium refused once, large answered.
    assert scripted.stats["ctx-openai"] == 2
    assert scripted.stats["large-up"] == 1
    assert router.metric("xrouter_context_window_fallbacks_total", model="small", to="medium") == 1
    assert router.metric("xrouter_context_window_fallbacks_total", model="small", to="large") == 1
    assert router.metric("xrouter_requests_total", model="small", provider="up", status="200") == 1
    rid = raw.headers["x-request-id"]
    deadline = time.monotonic() + 10
    row = ""
    while not row and time.monotonic() < deadline:
        time.sleep(0.2)
        row = pg.sql(
            f"SELECT model, provider, upstream_model, status, cost_usd > 0 FROM xrouter_usage"
            f" WHERE request_id = '{rid}'",
            name,
        )
    # The row names the model that answered (and is priced as that model).
    assert row == "small|up|large-up|200|t"


@pytest.mark.parametrize("model", ["claude-small", "azure-small"])
def test_anthropic_and_azure_phrasings_are_recognised(
    start_router: StartRouter, scripted: ScriptedUpstream, tmp_path: Path, model: str
) -> None:
    router = start_router(_config(scripted, tmp_path))
    reply = client(router).chat.completions.create(model=model, messages=MSG)
    assert reply.choices[0].message.content == "ok"
    assert reply.model == "large-up"
    assert router.metric("xrouter_context_window_fallbacks_total", model=model, to="large") == 1


def test_other_4xx_go_straight_back(
    start_router: StartRouter, scripted: ScriptedUpstream, tmp_path: Path
) -> None:
    router = start_router(_config(scripted, tmp_path))
    with pytest.raises(openai.BadRequestError) as e:
        client(router).chat.completions.create(model="picky", messages=MSG)
    assert e.value.code == "invalid_value"
    # A route without contextWindowFallbacks passes the refusal on: fallbacks are for
    # failures, not for requests the model refused.
    with pytest.raises(openai.BadRequestError) as e:
        client(router).chat.completions.create(model="plain", messages=MSG)
    assert e.value.code == "context_length_exceeded"
    assert scripted.stats["large-up"] == 0
    assert router.metric("xrouter_context_window_fallbacks_total") == 0


def test_no_larger_model_fits_passes_the_last_refusal(
    start_router: StartRouter, scripted: ScriptedUpstream, tmp_path: Path
) -> None:
    router = start_router(_config(scripted, tmp_path))
    with pytest.raises(openai.BadRequestError) as e:
        client(router).chat.completions.create(model="nowhere", messages=MSG)
    assert e.value.code == "context_length_exceeded"
    assert "maximum context length" in e.value.message
    assert scripted.stats["ctx-openai"] == 2


def test_unknown_context_window_fallback_is_refused_naming_the_field(tmp_path: Path) -> None:
    from xrouter_router.config import RouterConfig

    data = {
        "providers": [{"name": "m", "type": "mock"}],
        "models": [
            {"name": "a", "targets": [{"provider": "m", "model": "x"}], "contextWindowFallbacks": ["b"]}
        ],
    }
    with pytest.raises(ValueError, match=r"models\[a\]\.contextWindowFallbacks: 'b'"):
        RouterConfig.model_validate(data)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, b'{"error":{"code":"context_length_exceeded","message":"x"}}', True),
        (400, b'{"error":{"innererror":{"code":"context_length_exceeded"},"message":"x"}}', True),
        (
            400,
            b'{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long"}}',
            True,
        ),
        (
            400,
            b'{"error":{"message":"This model\'s maximum context length is 4096 tokens","code":null}}',
            True,
        ),
        (
            400,
            b'{"type":"error","error":{"type":"invalid_request_error","message":"input length and'
            b' `max_tokens` exceed context limit: 198000 + 8192 > 200000"}}',
            True,
        ),
        (400, b'{"error":{"message":"Your input exceeds the context window of this model."}}', True),
        (400, b'{"error":{"code":"invalid_value","message":"temperature"}}', False),
        (422, b'{"error":{"code":"context_length_exceeded"}}', False),
        (400, b"not json", False),
        (400, b"[]", False),
    ],
)
def test_recognised_phrasings(status: int, body: bytes, expected: bool) -> None:
    assert is_context_window_error(status, body) is expected
