"""The front-door translations on their own: what a chat completion becomes on
/v1/responses and /v1/messages, for the cases the fake and mock providers never
produce (a length stop, cached tokens, mixed tool results)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from xrouter_router import sse
from xrouter_router.errors import APIError
from xrouter_router.fronts.messages import FRONT as MESSAGES
from xrouter_router.fronts.responses import FRONT as RESPONSES
from xrouter_router.providers import StreamTranslator
from xrouter_router.sse import SSEParser


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return sse.encode(orjson.dumps({"id": "c", "model": "m", "choices": [choice]}))


USAGE = sse.encode(
    orjson.dumps(
        {
            "choices": [],
            "usage": {
                "prompt_tokens": 9,
                "completion_tokens": 4,
                "prompt_tokens_details": {"cached_tokens": 5},
            },
        }
    )
)
CHUNKS = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "Hi"}),
    _chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "w", "arguments": ""}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":1}'}}]}),
    _chunk({}, "length"),
    USAGE,
    sse.DONE,
]


def _run(tr: StreamTranslator) -> list[tuple[str | None, Any]]:
    out = b""
    for raw in CHUNKS:
        for ev in SSEParser().feed(raw):
            out += tr.feed(ev.event, ev.data, ev.raw)
    assert tr.done and (tr.usage.prompt, tr.usage.completion, tr.usage.cached) == (9, 4, 5)
    return [(e.event, json.loads(e.data)) for e in SSEParser().feed(out)]


def test_responses_stream_from_chat_chunks() -> None:
    events = _run(RESPONSES.stream(StreamTranslator(True)))
    names = [name for name, _ in events]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    final = events[-1][1]["response"]
    assert final["status"] == "incomplete" and final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert [item["type"] for item in final["output"]] == ["message", "function_call"]
    assert final["output"][1]["arguments"] == '{"a":1}' and final["output"][1]["call_id"] == "call_1"
    assert final["usage"]["input_tokens_details"] == {"cached_tokens": 5}
    assert events[9][1]["output_index"] == 1


def test_messages_stream_from_chat_chunks() -> None:
    events = _run(MESSAGES.stream(StreamTranslator(True)))
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[4][1]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "w", "input": {}}
    assert events[5][1] == {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"a":1}'},
    }
    delta = events[7][1]
    assert delta["delta"]["stop_reason"] == "max_tokens"
    assert delta["usage"] == {
        "input_tokens": 4,
        "output_tokens": 4,
        "cache_read_input_tokens": 5,
        "cache_creation_input_tokens": 0,
    }


def test_messages_request_to_chat() -> None:
    chat = MESSAGES.to_chat(
        {
            "model": "m",
            "max_tokens": 9,
            "system": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            "messages": [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "s"},
                        {"type": "text", "text": "calling"},
                        {"type": "tool_use", "id": "t1", "name": "w", "input": {"x": 1}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "bad", "is_error": True},
                        {
                            "type": "tool_result",
                            "tool_use_id": "t2",
                            "content": [
                                {"type": "text", "text": "shot"},
                                {"type": "image", "source": {"type": "url", "url": "https://x/i.png"}},
                            ],
                        },
                        {"type": "text", "text": "then?"},
                    ],
                },
            ],
            "stop_sequences": ["END"],
            "metadata": {"user_id": "u"},
            "tool_choice": {"type": "tool", "name": "w", "disable_parallel_tool_use": True},
            "tools": [{"name": "w", "input_schema": {"type": "object"}}],
        },
        "openai",
    )
    assert chat["messages"] == [
        {"role": "system", "content": "a\n\nb"},
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": "calling",
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "w", "arguments": '{"x":1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "Error: bad"},
        # A tool message carries text only: the result's image follows in the user turn.
        {"role": "tool", "tool_call_id": "t2", "content": "shot"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://x/i.png"}},
                {"type": "text", "text": "then?"},
            ],
        },
    ]
    assert chat["max_completion_tokens"] == 9 and chat["stop"] == ["END"] and chat["user"] == "u"
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "w"}}
    assert chat["parallel_tool_calls"] is False


def test_messages_answer_from_chat() -> None:
    body = orjson.loads(
        MESSAGES.from_chat(
            {
                "model": "m",
                "choices": [{"message": {"content": "cut"}, "finish_reason": "length"}],
                "usage": {
                    "prompt_tokens": 9,
                    "completion_tokens": 4,
                    "prompt_tokens_details": {"cached_tokens": 5},
                },
            }
        )
    )
    assert body["stop_reason"] == "max_tokens" and body["content"] == [{"type": "text", "text": "cut"}]
    assert body["usage"]["input_tokens"] == 4 and body["usage"]["cache_read_input_tokens"] == 5


def test_responses_request_to_chat() -> None:
    chat = RESPONSES.to_chat(
        {
            "model": "m",
            "instructions": "sys",
            "max_output_tokens": 5,
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "q"},
                        {"type": "input_image", "image_url": "u"},
                    ],
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "let me"}],
                },
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "r1"},
            ],
        },
        "anthropic",
    )
    assert chat["messages"][0] == {"role": "system", "content": "sys"}
    assert chat["messages"][1]["content"][1] == {"type": "image_url", "image_url": {"url": "u"}}
    assistant = chat["messages"][2]
    assert assistant["content"] == "let me"
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert chat["messages"][3] == {"role": "tool", "tool_call_id": "c1", "content": "r1"}
    assert chat["max_tokens"] == 5
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object"}},
    }
    with pytest.raises(APIError) as e:
        RESPONSES.to_chat({"model": "m", "input": [{"type": "computer_call_output", "call_id": "c"}]}, "mock")
    assert e.value.param == "input[0]"
