"""The translated path as the agent clients use it (issue 16): what Claude Code sends
to /v1/messages and Codex to /v1/responses reaches a provider of another API with
every part translated, dropped with notice (``x-xrouter-dropped`` and the log), or
refused with a 400 naming the field when dropping it would change the answer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from xrouter_router import sse
from xrouter_router.fronts.base import NOTES, Notes
from xrouter_router.fronts.messages import FRONT as MESSAGES
from xrouter_router.fronts.responses import flat_name
from xrouter_router.providers import StreamTranslator
from xrouter_router.sse import SSEParser

from .agentupstream import DONE, AgentUpstream
from .conftest import KEY, StartRouter, base_config
from .servers import Router

USER_ID = json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": "s" * 36})
DEFERRED = {"name": "Later", "input_schema": {"type": "object"}, "defer_loading": True}
WRITE = {"name": "Write", "input_schema": {"type": "object"}}


@pytest.fixture
def upstream() -> Iterator[AgentUpstream]:
    server = AgentUpstream("close_agent", {"id": "a1"})
    server.start()
    yield server
    server.stop()


def _router(start: StartRouter, tmp: Path, upstream: AgentUpstream, kind: str, suffix: str) -> Router:
    config = base_config("http://127.0.0.1:1", tmp)
    config["providers"] = [{"name": "up", "type": kind, "baseUrl": upstream.url + suffix, "maxRetries": 0}]
    config["models"] = [{"name": "m", "targets": [{"provider": "up", "model": "up-model"}]}]
    config["keys"] = config["keys"][:1]
    config["prices"] = {}
    return start(config)


def claude_code_request(stream: bool) -> dict[str, Any]:
    """The parts of Claude Code's requests that another provider cannot take as they are."""
    return {
        "model": "m",
        "max_tokens": 100,
        "stream": stream,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "load the tool"}]},
            {"role": "system", "content": [{"type": "text", "text": "<env>cwd: /p</env>"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "tool_use", "id": "toolu_1", "name": "ToolSearch", "input": {"query": "later"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "tool_reference", "tool_name": "Later"}],
                    }
                ],
            },
        ],
        "tools": [
            {"name": "ToolSearch", "input_schema": {"type": "object"}},
            WRITE,
            DEFERRED,
            {"type": "web_search_20250305", "name": "web_search"},
        ],
        "metadata": {"user_id": USER_ID},
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": []},
        "top_k": 5,
    }


@pytest.mark.parametrize("stream", [False, True])
def test_claude_code_request_on_chat(
    start_router: StartRouter, tmp_path: Path, upstream: AgentUpstream, stream: bool
) -> None:
    router = _router(start_router, tmp_path, upstream, "openai-compatible", "/v1")
    resp = httpx.post(
        router.url + "/v1/messages", headers={"x-api-key": KEY}, json=claude_code_request(stream)
    )
    assert resp.status_code == 200, resp.text
    dropped = resp.headers["x-xrouter-dropped"].split(", ")
    assert set(dropped) == {
        "content.thinking",
        "tool_result.tool_reference",
        "tools.defer_loading(Later)",
        "tools.web_search_20250305",
        "thinking",
        "context_management",
    }
    assert "dropped in translation" in router.log() and "tools.defer_loading(Later)" in router.log()
    sent = upstream.requests[-1]["body"]
    # The system turn stays where it was, after the top-level system prompt.
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "system", "assistant", "tool"]
    assert sent["messages"][2]["content"] == "<env>cwd: /p</env>"
    assert [t["function"]["name"] for t in sent["tools"]] == ["ToolSearch", "Write"]
    # OpenAI caps user at 64 characters: a longer id goes as its digest.
    assert sent["user"] == hashlib.sha256(USER_ID.encode()).hexdigest() and len(sent["user"]) == 64
    assert sent["top_k"] == 5  # openai-compatible servers (vLLM, SGLang) take it
    if stream:
        events = [(e.event, json.loads(e.data)) for e in SSEParser().feed(resp.content)]
        start = events[0][1]["message"]
        assert start["usage"]["input_tokens"] > 0  # an estimate, until message_delta's count
        assert events[-2][1]["usage"]["input_tokens"] == 120
        assert DONE in "".join(e[1]["delta"].get("text", "") for e in events if e[0] == "content_block_delta")
    else:
        assert resp.json()["content"][0]["text"].startswith(DONE)


def test_refused_when_dropping_changes_the_answer(
    start_router: StartRouter, tmp_path: Path, upstream: AgentUpstream
) -> None:
    router = _router(start_router, tmp_path, upstream, "openai-compatible", "/v1")
    body = claude_code_request(False) | {"tool_choice": {"type": "tool", "name": "Later"}}
    resp = httpx.post(router.url + "/v1/messages", headers={"x-api-key": KEY}, json=body)
    assert resp.status_code == 400
    assert resp.json()["error"]["message"].startswith("tool_choice.name:"), resp.text


def test_top_k_and_short_user_ids_for_openai() -> None:
    notes = Notes()
    chat = MESSAGES.to_chat(
        {
            "model": "m",
            "max_tokens": 5,
            "top_k": 3,
            "metadata": {"user_id": "u1"},
            "messages": [{"role": "user", "content": "x"}],
        },
        "openai",
        notes,
    )
    assert "top_k" not in chat and notes.dropped == ["top_k"]
    assert chat["user"] == "u1"


CODEX_TOOLS: Any = [
    {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
    {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "sub-agents",
        "tools": [{"type": "function", "name": "close_agent", "parameters": {"type": "object"}}],
    },
    {"type": "web_search", "external_web_access": True},
]


def codex_request(stream: bool, **extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "stream": stream,
        "instructions": "You are Codex.",
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "close it"}]}
        ],
        "tools": CODEX_TOOLS,
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"summary": "auto"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "session-1",
        **extra,
    }


@pytest.mark.parametrize("stream", [False, True])
def test_codex_namespace_tools_on_anthropic(
    start_router: StartRouter, tmp_path: Path, upstream: AgentUpstream, stream: bool
) -> None:
    router = _router(start_router, tmp_path, upstream, "anthropic", "")
    auth = {"authorization": f"Bearer {KEY}"}
    resp = httpx.post(router.url + "/v1/responses", headers=auth, json=codex_request(stream))
    assert resp.status_code == 200, resp.text
    assert set(resp.headers["x-xrouter-dropped"].split(", ")) == {
        "tools.web_search",
        "reasoning",
        "include",
        "prompt_cache_key",
    }
    sent = upstream.requests[-1]["body"]
    assert [t["name"] for t in sent["tools"]] == ["exec_command", "multi_agent_v1__close_agent"]
    if stream:
        done = [json.loads(e.data) for e in SSEParser().feed(resp.content) if e.event == "response.completed"]
        output = done[0]["response"]["output"]
    else:
        output = resp.json()["output"]
    call = output[-1]
    # The call is the namespace's own function again, as Codex declared it.
    assert (call["type"], call["namespace"], call["name"]) == (
        "function_call",
        "multi_agent_v1",
        "close_agent",
    )
    # The next turn sends it back with its result: the provider sees the flat name.
    turn = codex_request(
        stream,
        input=[
            *codex_request(stream)["input"],
            {"type": "reasoning", "summary": [], "encrypted_content": "opaque"},
            {k: call[k] for k in ("type", "call_id", "name", "namespace", "arguments")},
            {"type": "function_call_output", "call_id": call["call_id"], "output": "closed"},
        ],
    )
    resp = httpx.post(router.url + "/v1/responses", headers=auth, json=turn)
    assert resp.status_code == 200, resp.text
    assert "input.reasoning" in resp.headers["x-xrouter-dropped"]
    sent = upstream.requests[-1]["body"]
    assert sent["messages"][1]["content"][0]["name"] == "multi_agent_v1__close_agent"
    assert DONE in resp.text


def test_flat_names_are_stable_and_valid() -> None:
    assert flat_name("ns", "f") == "ns__f"
    long = flat_name("n" * 60, "some.tool")
    assert long == flat_name("n" * 60, "some.tool") and len(long) <= 64 and "." not in long
    assert long != flat_name("n" * 60, "other.tool")


def _chunk(choice: dict[str, Any]) -> bytes:
    return sse.encode(orjson.dumps({"id": "c", "model": "m", "choices": [{"index": 0, **choice}]}))


def _events(chunks: list[bytes]) -> list[Any]:
    tr = MESSAGES.stream(StreamTranslator(True))
    out = b"".join(tr.feed(ev.event, ev.data, ev.raw) for raw in chunks for ev in SSEParser().feed(raw))
    return [json.loads(e.data) for e in SSEParser().feed(out)]


def test_stop_sequences_refusals_and_the_opening_usage() -> None:
    token = NOTES.set(Notes(prompt_estimate=37))
    try:
        # vLLM names the stop string it met.
        events = _events(
            [
                _chunk({"delta": {"content": "a"}, "finish_reason": None}),
                _chunk({"delta": {}, "finish_reason": "stop", "stop_reason": "END"}),
                sse.DONE,
            ]
        )
        assert events[0]["message"]["usage"]["input_tokens"] == 37
        assert events[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
        # OpenAI's refusal deltas: the text, and stop_reason refusal.
        events = _events(
            [
                _chunk({"delta": {"refusal": "I can't"}, "finish_reason": None}),
                _chunk({"delta": {}, "finish_reason": "stop"}),
                sse.DONE,
            ]
        )
        assert events[2]["delta"] == {"type": "text_delta", "text": "I can't"}
        assert events[-2]["delta"]["stop_reason"] == "refusal"
    finally:
        NOTES.reset(token)
    answer = orjson.loads(
        MESSAGES.from_chat(
            {
                "choices": [
                    {
                        "message": {"role": "assistant", "content": "a"},
                        "finish_reason": "stop",
                        "stop_reason": "END",
                    }
                ]
            }
        )
    )
    assert (answer["stop_reason"], answer["stop_sequence"]) == ("stop_sequence", "END")
    answer = orjson.loads(
        MESSAGES.from_chat(
            {
                "choices": [
                    {
                        "message": {"role": "assistant", "content": None, "refusal": "no"},
                        "finish_reason": "stop",
                    }
                ]
            }
        )
    )
    assert answer["stop_reason"] == "refusal" and answer["content"] == [{"type": "text", "text": "no"}]
