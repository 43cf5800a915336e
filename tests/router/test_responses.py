"""``POST /v1/responses`` and ``GET /v1/responses/{id}`` with the real openai SDK:
passed through to OpenAI-type providers (the fake provider's /v1/responses), and
translated through chat completions for the mock and Anthropic providers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .conftest import KEY, KEY2, StartRouter, base_config, client, db_config
from .servers import FakeProvider, Postgres, Router
from .test_usage import _wait_drained

TOOLS: Any = [
    {
        "type": "function",
        "name": "weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


def _config(provider: FakeProvider, tmp: Path, **extra: Any) -> dict[str, Any]:
    config = base_config(provider.url, tmp, **extra)
    config["models"] += [
        {"name": "rflaky", "targets": [{"provider": "fake", "model": "flaky-1"}]},
        {"name": "rfail", "targets": [{"provider": "fake", "model": "fail"}]},
    ]
    return config


@pytest.fixture
def router(start_router: StartRouter, provider: FakeProvider, tmp_path: Path) -> Router:
    return start_router(_config(provider, tmp_path))


def test_translated_create_for_mock(router: Router, provider: FakeProvider) -> None:
    out = client(router).responses.create(model="echo", input="hello there router", instructions="be brief")
    assert out.output_text == "hello there router"
    assert out.status == "completed" and out.object == "response" and out.id.startswith("resp_")
    assert out.usage is not None and out.usage.output_tokens == 3 and out.usage.input_tokens > 3
    assert provider.stats() == {}  # answered in-process
    assert router.metric("xrouter_tokens_total", model="echo", provider="mock", kind="completion") == 3


def test_translated_stream_for_mock(router: Router) -> None:
    with client(router).responses.stream(model="echo", input="one two three") as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "one two three" and len(deltas) == 3
    assert final.output_text == "one two three"
    assert final.usage is not None and final.usage.output_tokens == 3
    # create(stream=True) is the same stream.
    chunks = list(client(router).responses.create(model="echo", input="four five", stream=True))
    done = [c for c in chunks if c.type == "response.completed"]
    assert len(done) == 1 and done[0].response.output_text == "four five"


def test_translated_tools_for_anthropic(router: Router, provider: FakeProvider) -> None:
    c = client(router)
    out = c.responses.create(model="claude", input="weather in Paris", tools=TOOLS, instructions="sys")
    kinds = [item.type for item in out.output]
    assert kinds == ["message", "function_call"]
    assert out.output_text == "weather in Paris"
    call = out.output[1]
    assert call.type == "function_call" and call.name == "weather"
    assert json.loads(call.arguments) == {"city": "Paris"} and call.call_id == "toolu_1"
    sent = provider.last()
    assert sent["path"] == "/v1/messages" and sent["body"]["system"] == "sys"
    assert sent["body"]["tools"][0]["name"] == "weather"
    # The tool's result goes back as a function_call_output item.
    follow = c.responses.create(
        model="claude",
        tools=TOOLS,
        input=[
            {"role": "user", "content": "weather in Paris"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": "weather",
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
    )
    assert [item.type for item in follow.output] == ["message"]
    blocks = provider.last()["body"]["messages"][-1]["content"]
    assert blocks == [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]
    # Streaming, the arguments arrive as deltas and the final response holds the call.
    with c.responses.stream(model="claude", input="weather in Oslo", tools=TOOLS) as stream:
        events = list(stream)
        final = stream.get_final_response()
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == {"city": "Paris"}
    assert [i.type for i in final.output] == ["message", "function_call"]
    assert final.output_text == "weather in Oslo"
    assert final.usage is not None and final.usage.input_tokens == 14


def test_pass_through_create_retrieve_and_previous_id(router: Router, provider: FakeProvider) -> None:
    c = client(router)
    out = c.responses.create(model="gpt", input="hello there")
    assert out.output_text == "hello there"
    sent = provider.last()
    assert sent["path"] == "/v1/responses" and sent["body"]["model"] == "gpt-up"
    assert "stream_options" not in sent["body"]
    assert sent["headers"]["authorization"] == "Bearer sk-upstream-secret"
    assert router.metric("xrouter_tokens_total", model="gpt", provider="fake", kind="completion") == 2

    got = c.responses.retrieve(out.id)
    assert got.id == out.id and got.output_text == "hello there"
    assert provider.last()["path"] == f"/v1/responses/{out.id}"

    nxt = c.responses.create(model="gpt", input="and again", previous_response_id=out.id)
    assert nxt.output_text == "and again"
    assert provider.last()["body"]["previous_response_id"] == out.id
    with pytest.raises(openai.BadRequestError) as e:
        c.responses.create(model="gpt", input="x", previous_response_id="resp_nope")
    assert e.value.param == "previous_response_id"  # the provider's own refusal, passed on
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve("resp_nope")
    items = c.responses.input_items.list(out.id)
    assert [i.type for i in items.data] == ["message"]
    assert provider.last()["path"] == f"/v1/responses/{out.id}/input_items"
    c.responses.delete(out.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(out.id)  # deleted at the provider


def test_pass_through_stream(router: Router, provider: FakeProvider) -> None:
    with client(router).responses.stream(model="gpt", input="a streamed answer") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "a streamed answer"
    assert final.output_text == "a streamed answer"
    assert provider.last()["body"]["stream"] is True
    assert router.metric("xrouter_tokens_total", model="gpt", provider="fake", kind="completion") == 3


def test_azure_responses_path(start_router: StartRouter, provider: FakeProvider, tmp_path: Path) -> None:
    config = _config(provider, tmp_path)
    config["models"] = [m for m in config["models"] if m["name"] in ("azure", "echo")]
    router = start_router(config)
    out = client(router).responses.create(model="azure", input="via azure")
    assert out.output_text == "via azure"
    sent = provider.last()
    assert sent["path"] == "/openai/responses" and sent["query"] == {"api-version": "2024-06-01"}
    assert sent["body"]["model"] == "my-deployment" and sent["headers"]["api-key"] == "sk-upstream-secret"
    got = client(router).responses.retrieve(out.id, extra_query={"api-version": "evil", "x": "y"})
    assert got.output_text == "via azure" and provider.last()["path"] == f"/openai/responses/{out.id}"
    assert provider.last()["query"] == {"api-version": "2024-06-01"}  # the client's query is not ours to pass


def test_state_the_router_cannot_honour(router: Router, provider: FakeProvider) -> None:
    c = client(router)
    with pytest.raises(openai.BadRequestError) as e:
        c.responses.create(model="echo", input="hi", previous_response_id="resp_1")
    assert e.value.param == "previous_response_id" and "previous_response_id" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        c.responses.create(model="claude", input="hi", previous_response_id="resp_1")
    assert e.value.param == "previous_response_id"
    assert provider.stats() == {}  # nothing was sent
    # A key that only reaches the mock reaches no provider keeping responses.
    with pytest.raises(openai.BadRequestError) as e:
        client(router, KEY2).responses.retrieve("resp_1")
    assert e.value.param == "response_id"


def test_retries_and_no_retry_once_streaming(router: Router, provider: FakeProvider) -> None:
    c = client(router)
    assert c.responses.create(model="rflaky", input="second time lucky").output_text == "second time lucky"
    assert provider.stats()["flaky-1"] == 2
    with pytest.raises(openai.InternalServerError) as e:
        c.responses.create(model="rfail", input="x")
    assert e.value.status_code == 502 and provider.stats()["fail"] == 3  # maxRetries 2
    # Bytes went out before the upstream broke: the stream ends with an error, no retry.
    with pytest.raises(openai.APIError) as err, c.responses.stream(model="breakstream", input="a b c d") as s:
        list(s)
    assert "ended early" in err.value.message
    assert provider.stats()["breakstream"] == 1


def test_errors_in_openai_shape(router: Router) -> None:
    c = client(router)
    with pytest.raises(openai.NotFoundError) as nf:
        c.responses.create(model="nope", input="x")
    assert nf.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        c.responses.create(model="echo")  # type: ignore[call-overload]
    assert bad.value.param == "input"
    with pytest.raises(openai.BadRequestError) as bad:
        c.responses.create(
            model="echo",
            input="x",
            tools=[{"type": "web_search"}],  # type: ignore[list-item]
            tool_choice={"type": "function", "name": "web_search"},
        )
    assert bad.value.param == "tool_choice.name"
    with pytest.raises(openai.BadRequestError) as bad:
        c.responses.create(
            model="echo", input=[{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]
        )
    assert bad.value.param == "input[0].content[0]"
    with pytest.raises(openai.PermissionDeniedError):
        client(router, KEY2).responses.create(model="gpt", input="x")


def test_usage_rows_and_budget(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    config = db_config(provider.url, tmp_path)
    config["keys"][0]["limits"] = {"budgetUsd": 0.000001}
    router = start_router(config, {"TEST_DATABASE_URL": pg.dsn(name)})
    raw = client(router).responses.with_raw_response.create(model="gpt", input="count me")
    rid = raw.headers["x-request-id"]
    with pytest.raises(openai.RateLimitError) as e:
        client(router).responses.create(model="gpt", input="count me")
    assert e.value.code == "budget_limit_exceeded"
    list(client(router, KEY2).responses.create(model="echo", input="streamed row", stream=True))
    _wait_drained(router)
    time.sleep(0.3)
    row = pg.sql(
        "SELECT key_name, model, provider, upstream_model, completion_tokens, status, cost_usd > 0"
        f" FROM xrouter_usage WHERE request_id = '{rid}'",
        name,
    )
    assert row == "alpha|gpt|fake|gpt-up|2|200|t"
    streamed = pg.sql(
        "SELECT model, provider, completion_tokens FROM xrouter_usage WHERE key_name = 'beta'", name
    )
    assert streamed == "echo|mock|2"


BAD_RESPONSES: Any = [
    ({"input": 5}, "input"),
    ({"input": [5]}, "input[0]"),
    ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": "x", "tools": [{"name": "w"}]}, "tools[0]"),
    ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"input": [{"role": "user", "content": 5}]}, "input[0].content"),
    ({"input": [{"type": "function_call", "name": "w"}]}, "input[0]"),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    (
        {"input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "u"}]}]},
        "input[0].content",
    ),
    ({"input": "x", "tools": [{"type": "function", "name": "w"}], "tool_choice": "sometimes"}, "tool_choice"),
    ({"input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"input": "x", "conversation": "conv_1"}, "conversation"),
]


@pytest.mark.parametrize(("body", "param"), BAD_RESPONSES)
def test_bad_requests_name_the_field(router: Router, body: dict[str, Any], param: str) -> None:
    """Malformed or untranslatable requests get a 400 naming the field, never a 500."""
    for model in ("echo", "claude"):
        resp = httpx.post(
            router.url + "/v1/responses",
            headers={"authorization": f"Bearer {KEY}"},
            json={"model": model, **body},
        )
        assert resp.status_code == 400, (model, resp.text)
        assert resp.json()["error"]["param"] == param
