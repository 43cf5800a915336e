"""``POST /v1/messages`` (the Anthropic Messages API) with the real anthropic SDK:
passed through to Anthropic providers, translated through chat completions for
OpenAI-type providers and the mock; errors in Anthropic's shape."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from .conftest import KEY, KEY2, StartRouter, base_config, db_config
from .servers import FakeProvider, Postgres, Router
from .test_usage import _wait_drained

TOOLS: Any = [
    {
        "name": "weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
PNG = base64.b64encode(b"\x89PNG fake image").decode()


def _config(provider: FakeProvider, tmp: Path, **extra: Any) -> dict[str, Any]:
    config = base_config(provider.url, tmp, **extra)
    config["models"] += [
        {"name": "gpt-tools", "targets": [{"provider": "fake", "model": "toolcall"}]},
        {"name": "rfail", "targets": [{"provider": "fake", "model": "fail"}]},
    ]
    return config


def ac(router: Router, key: str = KEY, **kw: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=router.url, api_key=key, max_retries=0, **kw)


@pytest.fixture
def router(start_router: StartRouter, provider: FakeProvider, tmp_path: Path) -> Router:
    return start_router(_config(provider, tmp_path))


def test_translated_text_for_openai_types(router: Router, provider: FakeProvider) -> None:
    msg = ac(router).messages.create(
        model="gpt",
        max_tokens=100,
        system="be brief",
        messages=[{"role": "user", "content": "hello there"}],
    )
    assert msg.type == "message" and msg.role == "assistant"
    assert [b.type for b in msg.content] == ["text"] and msg.content[0].text == "hello there"  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens == 2 and msg.usage.input_tokens > 0
    sent = provider.last()
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there"},
    ]
    assert sent["body"]["max_tokens"] == 100 and sent["body"]["model"] == "gpt-up"
    assert sent["headers"]["authorization"] == "Bearer sk-upstream-secret"
    # Azure (an OpenAI model family) gets max_completion_tokens, at its deployment path.
    ac(router).messages.create(model="azure", max_tokens=7, messages=[{"role": "user", "content": "hi"}])
    sent = provider.last()
    assert sent["path"] == "/openai/deployments/my-deployment/chat/completions"
    assert sent["body"]["max_completion_tokens"] == 7 and "max_tokens" not in sent["body"]


def test_translated_stream(router: Router) -> None:
    with ac(router).messages.stream(
        model="gpt", max_tokens=50, messages=[{"role": "user", "content": "hello streamed world"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "hello streamed world"
    assert final.content[0].text == "hello streamed world"  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 3
    # The raw events, in Anthropic's order.
    events = list(
        ac(router).messages.create(
            model="echo", max_tokens=50, stream=True, messages=[{"role": "user", "content": "a b"}]
        )
    )
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_translated_tools_tool_results_and_images(router: Router, provider: FakeProvider) -> None:
    c = ac(router)
    ask: Any = [{"role": "user", "content": "weather in Paris?"}]
    msg = c.messages.create(
        model="gpt-tools", max_tokens=100, tools=TOOLS, tool_choice={"type": "any"}, messages=ask
    )
    assert msg.stop_reason == "tool_use"
    use = msg.content[-1]
    assert use.type == "tool_use" and use.name == "weather" and use.input == {"city": "Paris"}
    sent = provider.last()["body"]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Weather for a city",
                "parameters": TOOLS[0]["input_schema"],
            },
        }
    ]
    assert sent["tool_choice"] == "required"
    # The result goes back as a tool message answering the assistant's call.
    answer = c.messages.create(
        model="gpt-tools",
        max_tokens=100,
        tools=TOOLS,
        messages=[
            *ask,
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": use.id, "name": "weather", "input": use.input}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
        ],
    )
    assert answer.stop_reason == "end_turn" and answer.content[0].text == "weather in Paris?"  # type: ignore[union-attr]
    chat = provider.last()["body"]["messages"]
    assert chat[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": use.id,
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    assert chat[2] == {"role": "tool", "tool_call_id": use.id, "content": "sunny"}
    # Streaming, the tool input arrives as input_json_delta and the SDK assembles it.
    with c.messages.stream(model="gpt-tools", max_tokens=100, tools=TOOLS, messages=ask) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[-1].type == "tool_use" and final.content[-1].input == {"city": "Paris"}
    # Images become image_url parts (a data URL for base64).
    c.messages.create(
        model="gpt",
        max_tokens=10,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                ],
            }
        ],
    )
    parts = provider.last()["body"]["messages"][0]["content"]
    assert parts == [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]


def test_pass_through_to_anthropic(router: Router, provider: FakeProvider) -> None:
    c = ac(router)
    msg = c.messages.create(
        model="claude",
        max_tokens=100,
        tools=TOOLS,
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi Paris"}]}],
        extra_body={"top_k": 5},
    )
    assert msg.content[0].text == "hi Paris" and msg.content[1].type == "tool_use"  # type: ignore[union-attr]
    assert msg.usage.input_tokens == 10 and msg.usage.cache_read_input_tokens == 4
    sent = provider.last()
    assert sent["path"] == "/v1/messages"
    assert sent["body"]["model"] == "claude-up" and sent["body"]["top_k"] == 5  # untouched otherwise
    assert sent["headers"]["x-api-key"] == "sk-upstream-secret"  # never the client's key
    assert sent["headers"]["anthropic-version"] and "anthropic-beta" not in sent["headers"]
    with c.messages.stream(
        model="claude",
        max_tokens=100,
        messages=[{"role": "user", "content": [{"type": "text", "text": "a b c"}]}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "a b c" and final.usage.output_tokens == 3
    assert router.metric("xrouter_tokens_total", model="claude", provider="claude", kind="cached") == 8
    assert router.metric("xrouter_tokens_total", model="claude", provider="claude", kind="prompt") == 28
    # The client's beta features reach Anthropic; a translated provider never sees them.
    beta = c.beta.messages.create(
        model="claude",
        max_tokens=5,
        betas=["feature-a", "feature-b"],
        messages=[{"role": "user", "content": "x"}],
    )
    assert beta.content
    assert provider.last()["headers"]["anthropic-beta"] == "feature-a,feature-b"
    c.beta.messages.create(
        model="gpt", max_tokens=5, betas=["feature-a"], messages=[{"role": "user", "content": "x"}]
    )
    assert "anthropic-beta" not in provider.last()["headers"]


def test_keys_as_x_api_key_or_bearer(router: Router) -> None:
    ask: Any = [{"role": "user", "content": "hi"}]
    assert ac(router).messages.create(model="echo", max_tokens=5, messages=ask).content
    bearer = anthropic.Anthropic(base_url=router.url, auth_token=KEY, api_key=None, max_retries=0)
    assert bearer.messages.create(model="echo", max_tokens=5, messages=ask).content
    with pytest.raises(anthropic.AuthenticationError) as e:
        ac(router, "sk-wrong").messages.create(model="echo", max_tokens=5, messages=ask)
    assert e.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "Invalid or missing API key"},
    }


def test_errors_in_anthropic_shape(router: Router, provider: FakeProvider) -> None:
    c = ac(router)
    ask: Any = [{"role": "user", "content": "hi"}]
    with pytest.raises(anthropic.NotFoundError) as nf:
        c.messages.create(model="nope", max_tokens=5, messages=ask)
    assert nf.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.PermissionDeniedError):
        ac(router, KEY2).messages.create(model="gpt", max_tokens=5, messages=ask)
    raw = httpx.post(
        router.url + "/v1/messages", headers={"x-api-key": KEY}, json={"model": "gpt", "messages": ask}
    )
    assert raw.status_code == 400
    assert raw.json()["type"] == "error" and raw.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in raw.json()["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as bad:
        c.messages.create(
            model="gpt",
            max_tokens=5,
            messages=[
                {"role": "user", "content": [{"type": "document", "source": {"type": "text", "data": "x"}}]}
            ],  # type: ignore[list-item]
        )
    assert "messages[0].content[0]" in bad.value.message
    with pytest.raises(anthropic.InternalServerError) as down:
        c.messages.create(model="rfail", max_tokens=5, messages=ask)
    assert down.value.status_code == 502 and down.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert provider.stats()["fail"] == 3  # retried as for any endpoint
    # The upstream broke after the stream started: an error event, no retry.
    ask = [{"role": "user", "content": "a b c d"}]
    with (
        pytest.raises(anthropic.APIStatusError) as broken,
        c.messages.stream(model="breakstream", max_tokens=5, messages=ask) as s,
    ):
        list(s.text_stream)
    assert "ended early" in str(broken.value)
    assert provider.stats()["breakstream"] == 1


def test_count_tokens(router: Router, provider: FakeProvider) -> None:
    c = ac(router)
    ask: Any = [{"role": "user", "content": "one two three"}]
    counted = c.messages.count_tokens(model="claude", messages=ask)
    sent = provider.last()
    assert sent["path"] == "/v1/messages/count_tokens" and sent["body"]["model"] == "claude-up"
    assert sent["headers"]["x-api-key"] == "sk-upstream-secret"
    assert counted.input_tokens == len(json.dumps(ask).split())  # the provider's own count
    # A chat provider has no counting endpoint: an estimate, a token per four bytes.
    provider.reset()
    estimate = c.messages.count_tokens(model="gpt", messages=ask)
    assert 5 <= estimate.input_tokens <= 30
    assert provider.last() == {}  # nothing was sent
    with pytest.raises(anthropic.NotFoundError):
        c.messages.count_tokens(model="nope", messages=ask)
    with pytest.raises(anthropic.PermissionDeniedError):
        ac(router, KEY2).messages.count_tokens(model="claude", messages=ask)
    with pytest.raises(anthropic.AuthenticationError):
        ac(router, "sk-wrong").messages.count_tokens(model="claude", messages=ask)


def test_limits_apply(start_router: StartRouter, provider: FakeProvider, tmp_path: Path) -> None:
    config = _config(provider, tmp_path)
    config["keys"][0]["limits"] = {"rpm": 1}
    router = start_router(config)
    ask: Any = [{"role": "user", "content": "hi"}]
    ac(router).messages.create(model="echo", max_tokens=5, messages=ask)
    with pytest.raises(anthropic.RateLimitError) as e:
        ac(router).messages.create(model="echo", max_tokens=5, messages=ask)
    assert e.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert e.value.response.headers["retry-after"]


def test_usage_rows(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    router = start_router(db_config(provider.url, tmp_path), {"TEST_DATABASE_URL": pg.dsn(name)})
    raw = ac(router).messages.with_raw_response.create(
        model="gpt", max_tokens=5, messages=[{"role": "user", "content": "count me"}]
    )
    rid = raw.headers["x-request-id"]
    ask: Any = [{"role": "user", "content": [{"type": "text", "text": "x y"}]}]
    with ac(router).messages.stream(model="claude", max_tokens=5, messages=ask) as s:
        s.get_final_message()
    _wait_drained(router)
    time.sleep(0.3)
    row = pg.sql(
        "SELECT key_name, model, provider, upstream_model, completion_tokens, status, cost_usd > 0"
        f" FROM xrouter_usage WHERE request_id = '{rid}'",
        name,
    )
    assert row == "alpha|gpt|fake|gpt-up|2|200|t"
    streamed = pg.sql(
        "SELECT provider, upstream_model, prompt_tokens, completion_tokens, cached_tokens FROM xrouter_usage"
        " WHERE model = 'claude'",
        name,
    )
    assert streamed == "claude|claude-up|14|2|4"


BAD_MESSAGES: Any = [
    ({"max_tokens": "5", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"max_tokens": 5, "messages": []}, "messages"),
    ({"max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content[0]"),
    ({"max_tokens": 5, "system": 5, "messages": [{"role": "user", "content": "x"}]}, "system"),
    (
        {"max_tokens": 5, "system": [{"type": "image"}], "messages": [{"role": "user", "content": "x"}]},
        "system[0]",
    ),
    (
        {"max_tokens": 5, "tools": [{"description": "x"}], "messages": [{"role": "user", "content": "x"}]},
        "tools[0]",
    ),
    (
        {"max_tokens": 5, "stop_sequences": [1], "messages": [{"role": "user", "content": "x"}]},
        "stop_sequences",
    ),
    (
        {
            "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}],
        },
        "messages[0].content[0].source",
    ),
    (
        {
            "max_tokens": 5,
            "messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "w"}]}],
        },
        "messages[0].content[0]",
    ),
    (
        {
            "max_tokens": 5,
            "tools": [{"name": "w"}],
            "tool_choice": {"type": "maybe"},
            "messages": [{"role": "user", "content": "x"}],
        },
        "tool_choice.type",
    ),
    (
        {
            "max_tokens": 5,
            # A server tool is dropped on this path; forcing it would change the answer.
            "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            "tool_choice": {"type": "tool", "name": "web_search"},
            "messages": [{"role": "user", "content": "x"}],
        },
        "tool_choice.name",
    ),
]


@pytest.mark.parametrize(("body", "param"), BAD_MESSAGES)
def test_bad_requests_name_the_field(router: Router, body: dict[str, Any], param: str) -> None:
    """Malformed or untranslatable requests get a 400 in Anthropic's shape whose
    message names the field, never a 500."""
    resp = httpx.post(router.url + "/v1/messages", headers={"x-api-key": KEY}, json={"model": "gpt", **body})
    assert resp.status_code == 400, resp.text
    err = resp.json()
    assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
    assert err["error"]["message"].startswith(param + ":") or param in err["error"]["message"], err
