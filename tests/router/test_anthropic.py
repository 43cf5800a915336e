"""Anthropic translation both ways: unit tests of the mapping, and end to end through
the router to the fake provider's /v1/messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from xrouter_router.providers.anthropic import AnthropicStream, from_anthropic, to_anthropic
from xrouter_router.sse import SSEParser

from .conftest import KEY, StartRouter, base_config, client
from .servers import FakeProvider, Router

TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def test_request_to_anthropic() -> None:
    payload = {
        "model": "claude",
        "max_tokens": 50,
        "temperature": 0.2,
        "stop": "END",
        "user": "u1",
        "tools": TOOLS,
        "tool_choice": "required",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "user", "content": [{"type": "text", "text": "and tomorrow?"}]},
        ],
    }
    body = to_anthropic(payload, "claude-up", stream=True)
    assert body["system"] == "be brief"
    assert body["model"] == "claude-up" and body["max_tokens"] == 50 and body["stream"] is True
    assert body["stop_sequences"] == ["END"] and body["metadata"] == {"user_id": "u1"}
    assert body["tools"] == [
        {
            "name": "weather",
            "description": "Weather for a city",
            "input_schema": TOOLS[0]["function"]["parameters"],
        }
    ]
    assert body["tool_choice"] == {"type": "any"}
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}}
    ]
    # The tool result and the next user turn merge into one user message.
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
        {"type": "text", "text": "and tomorrow?"},
    ]


def test_response_from_anthropic() -> None:
    out, usage = from_anthropic(
        {
            "id": "msg_1",
            "model": "claude-up",
            "stop_reason": "tool_use",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            ],
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 4},
        },
        "claude",
    )
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check."
    call = choice["message"]["tool_calls"][0]
    assert call["id"] == "toolu_1" and json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert (usage.prompt, usage.completion, usage.cached) == (14, 5, 4)
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 4}


def test_stream_events_translate() -> None:
    events = [
        (
            "message_start",
            {"message": {"id": "m1", "model": "c", "usage": {"input_tokens": 7, "output_tokens": 1}}},
        ),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        ("content_block_start", {"index": 1, "content_block": {"type": "tool_use", "id": "t1", "name": "w"}}),
        ("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        ("message_stop", {}),
    ]
    raw = b"".join(f"event: {n}\ndata: {json.dumps({'type': n, **d})}\n\n".encode() for n, d in events)
    tr = AnthropicStream(include_usage=True, public_model="claude")
    out = b"".join(tr.feed(e.event, e.data, e.raw) for e in SSEParser().feed(raw))
    chunks = [json.loads(e.data) for e in SSEParser().feed(out) if e.data != b"[DONE]"]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[1]["choices"][0]["delta"] == {"content": "Hi"}
    assert chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "w"
    assert chunks[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert chunks[4]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[5]["usage"]["prompt_tokens"] == 7 and chunks[5]["usage"]["completion_tokens"] == 9
    assert out.endswith(b"data: [DONE]\n\n") and tr.done


@pytest.fixture
def router(start_router: StartRouter, provider: FakeProvider, tmp_path: Path) -> Router:
    return start_router(base_config(provider.url, tmp_path))


def test_end_to_end_non_stream(router: Router, provider: FakeProvider) -> None:
    out = client(router).chat.completions.create(
        model="claude",
        tools=TOOLS,
        messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": "what is the weather"}],
    )
    msg = out.choices[0].message
    assert msg.content == "what is the weather"
    assert msg.tool_calls is not None and msg.tool_calls[0].function.name == "weather"
    assert out.choices[0].finish_reason == "tool_calls"
    assert out.usage is not None and out.usage.prompt_tokens == 14
    last = provider.last()
    assert last["path"] == "/v1/messages" and last["body"]["system"] == "sys"
    assert last["headers"]["x-api-key"] == "sk-upstream-secret"
    assert last["headers"]["anthropic-version"]
    assert router.metric("xrouter_tokens_total", model="claude", kind="cached") == 4


def test_end_to_end_stream(router: Router) -> None:
    chunks = list(
        client(router).chat.completions.create(
            model="claude",
            tools=TOOLS,
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "weather in Paris"}],
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    args = "".join(
        tc.function.arguments or ""
        for c in chunks
        if c.choices
        for tc in (c.choices[0].delta.tool_calls or [])
        if tc.function
    )
    assert text == "weather in Paris"
    assert json.loads(args) == {"city": "Paris"}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


def test_cache_writes_are_priced_at_the_cache_write_rates(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path
) -> None:
    config = base_config(provider.url, tmp_path)
    # claude-up: input 3, output 15, cachedInput 0.3; a 1-hour write at a set rate, a
    # 5-minute write at the default (Anthropic's 1.25 x input = 3.75).
    config["prices"]["claude-up"]["cacheWrite1hInput"] = 6.5
    router = start_router(config)
    c = anthropic.Anthropic(base_url=router.url, api_key=KEY, max_retries=0)

    def cost() -> float:
        return router.metric("xrouter_cost_usd_total", model="claude", provider="claude")

    def ask(ttl: str, stream: bool) -> None:
        system: Any = [
            {"type": "text", "text": "long rules", "cache_control": {"type": "ephemeral", "ttl": ttl}}
        ]
        messages: Any = [{"role": "user", "content": [{"type": "text", "text": "one two"}]}]
        if stream:
            with c.messages.stream(model="claude", max_tokens=9, system=system, messages=messages) as s:
                s.get_final_message()
        else:
            msg = c.messages.create(model="claude", max_tokens=9, system=system, messages=messages)
            assert msg.usage.cache_creation_input_tokens == 100  # passed through as sent

    # 10 fresh input tokens, 4 read from the cache, 100 written to it, 2 output.
    ask("5m", stream=False)
    assert cost() == pytest.approx((10 * 3 + 4 * 0.3 + 100 * 3.75 + 2 * 15) / 1e6)
    before = cost()
    ask("1h", stream=True)
    assert cost() - before == pytest.approx((10 * 3 + 4 * 0.3 + 100 * 6.5 + 2 * 15) / 1e6)


def test_one_call_at_a_time_and_fields_the_messages_api_has_not(
    router: Router, provider: FakeProvider
) -> None:
    """``parallel_tool_calls: false`` is the Messages API's
    ``tool_choice.disable_parallel_tool_use``; a seed and penalties have no place there
    (dropped with notice); a second choice cannot come back (refused, naming ``n``)."""
    raw = client(router).chat.completions.with_raw_response.create(
        model="claude",
        tools=TOOLS,
        parallel_tool_calls=False,
        seed=7,
        presence_penalty=0.5,
        n=1,  # the default: nothing to say about it
        messages=[{"role": "user", "content": "weather"}],
    )
    assert raw.parse().choices[0].finish_reason == "tool_calls"
    assert set(raw.headers["x-xrouter-dropped"].split(", ")) == {"seed", "presence_penalty"}
    assert provider.last()["body"]["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    with pytest.raises(openai.BadRequestError) as refused:
        client(router).chat.completions.create(
            model="claude", n=2, messages=[{"role": "user", "content": "x"}]
        )
    assert refused.value.status_code == 400 and refused.value.param == "n"
