"""The conformance cases behind docs/conformance.md: for each front door, request parts
and what becomes of them on each provider type. tests/router/test_conformance.py sends
every case through a router to the fakes of every column and renders the table from
the outcomes it observed (``make conformance`` rewrites the doc; the test fails when
the doc is stale)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .toolturns import PNG

Json = dict[str, Any]


@dataclass(frozen=True)
class Column:
    """One provider type, with the upstream model that decides what it speaks: Bedrock
    and Vertex take ``/v1/messages`` natively for Claude only, so each has two."""

    key: str  # the column's heading and the router's route name
    type: str
    model: str  # the upstream model the route targets
    native: tuple[str, ...]  # the front doors whose requests it gets as they came

    @property
    def route(self) -> str:
        return re.sub(r"[^a-z]+", "-", self.key).strip("-")


COLUMNS = [
    Column("openai", "openai", "gpt-up", ("chat", "responses")),
    Column("openai-compatible", "openai-compatible", "gpt-up", ("chat", "responses")),
    Column("azure-openai", "azure-openai", "my-deployment", ("chat", "responses")),
    Column("anthropic", "anthropic", "claude-up", ("messages",)),
    Column("bedrock (Claude)", "bedrock", "us.anthropic.claude-3-5-sonnet-20240620-v1:0", ("messages",)),
    Column("bedrock (Llama, Nova, ...)", "bedrock", "meta.llama3-1-70b-instruct-v1:0", ()),
    Column("gemini", "gemini", "gemini-2.0-flash-001", ()),
    Column("vertex (Gemini)", "vertex", "gemini-2.0-flash-001", ()),
    Column("vertex (Claude)", "vertex", "claude-sonnet-4@20250514", ("messages",)),
    Column("mock", "mock", "echo-1", ("chat",)),
]
# Images reach Converse and generateContent inline only (bytes), never by URL.
_INLINE_ONLY = {c.key: "refused" for c in COLUMNS if c.type in ("bedrock", "gemini", "vertex")}
_INLINE_ONLY["vertex (Claude)"] = "translated"  # the Messages API takes URL images
# Converse and generateContent have no end-user field.
_NO_USER = {"bedrock": "dropped", "gemini": "dropped", "vertex (Gemini)": "dropped"}
# JSON mode without a schema: generateContent has it (responseMimeType); the Messages
# API and Converse take a JSON schema only.
_NO_JSON_MODE = {"anthropic": "dropped", "bedrock": "dropped", "vertex (Claude)": "dropped"}
_SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
_USER_KEYS = ("user", "user_id")
_MAX_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "maxTokens", "maxOutputTokens")

_USER = {"role": "user", "content": "hi"}
_TOOL = {"name": "w", "input_schema": {"type": "object"}}
_FN = {"type": "function", "name": "w", "parameters": {"type": "object"}}
_NS = {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "f", "parameters": {}}]}


@dataclass(frozen=True)
class Case:
    part: str  # the request part, as the doc names it
    patch: Json  # merged into the front door's minimal request
    reason: str  # why it ends up where it does
    expect: dict[str, str] = field(default_factory=dict)  # column or type → outcome, when not the default
    # A field of the request → the upstream body's keys (at any depth) that carry it in
    # some provider's API: a translated request with none of them lost the field silently.
    arrives: dict[str, tuple[str, ...]] = field(default_factory=dict)
    usual: str = ""  # its outcome on a translated path, when not OUTCOMES' (chat cases)
    refused_by: tuple[str, ...] = ()  # columns that refuse it though they speak the front door


def messages(**fields: Any) -> Json:
    return {"model": "m", "max_tokens": 10, "messages": [_USER], **fields}


def responses(**fields: Any) -> Json:
    return {"model": "m", "input": "hi", **fields}


def _turns(*turns: Json) -> Json:
    return {"messages": list(turns)}


MESSAGES: list[Case] = [
    Case("system (string or text blocks)", {"system": "be brief"}, "chat system message"),
    Case(
        "messages[].role system (anywhere)",
        _turns(_USER, {"role": "system", "content": "env"}),
        "a chat system message in place (Claude Code's environment block)",
    ),
    Case(
        "text, image (base64)",
        _turns(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "x"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                ],
            }
        ),
        "chat content parts",
    ),
    Case(
        "image (url)",
        _turns(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "x"},
                    {"type": "image", "source": {"type": "url", "url": "https://x/i.png"}},
                ],
            }
        ),
        "a chat image_url part; Bedrock and Gemini take images inline only",
        _INLINE_ONLY,
    ),
    Case(
        "tool_use, tool_result (text, image)",
        _turns(
            _USER,
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
        ),
        "assistant tool_calls, tool messages",
    ),
    Case(
        "tool_result with tool_reference",
        _turns(
            _USER,
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "tool_reference", "tool_name": "w"}],
                    }
                ],
            },
        ),
        "loads a deferred tool: nothing to load elsewhere",
    ),
    Case(
        "thinking, redacted_thinking blocks",
        _turns(
            _USER,
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "t", "signature": "s"},
                    {"type": "text", "text": "a"},
                ],
            },
            _USER,
        ),
        "only the model that wrote them can read them back",
    ),
    Case(
        "server tool blocks (server_tool_use, web_search_tool_result, ...)",
        _turns(
            _USER,
            {
                "role": "assistant",
                "content": [
                    {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
                    {"type": "text", "text": "a"},
                ],
            },
            _USER,
        ),
        "results of tools that ran at Anthropic",
    ),
    Case(
        "document block",
        _turns(
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "d"}}
                ],
            }
        ),
        "a document the model would not see changes the answer",
    ),
    Case("tools (client tools)", {"tools": [_TOOL]}, "chat function tools"),
    Case(
        "tools[].defer_loading",
        {"tools": [_TOOL, {**_TOOL, "name": "later", "defer_loading": True}]},
        "no tool search on the other side",
    ),
    Case(
        "server tools (web_search_20250305, code_execution, ...)",
        {"tools": [_TOOL, {"type": "web_search_20250305", "name": "web_search"}]},
        "run at Anthropic only",
    ),
    Case(
        "tool_choice (auto, any, tool, none)",
        {"tools": [_TOOL], "tool_choice": {"type": "any"}},
        "chat tool_choice",
        arrives={"tool_choice": ("tool_choice", "toolChoice", "functionCallingConfig")},
    ),
    Case(
        "tool_choice naming a dropped tool",
        {
            "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            "tool_choice": {"type": "tool", "name": "web_search"},
        },
        "forcing a tool that cannot run changes the answer",
    ),
    Case(
        "metadata.user_id",
        {"metadata": {"user_id": "x" * 150}},
        "chat user; over OpenAI's 64 characters, its SHA-256 (64 hex); "
        "Converse and generateContent have no end-user field",
        _NO_USER,
        {"metadata.user_id": _USER_KEYS},
    ),
    Case(
        "stop_sequences",
        {"stop_sequences": ["END"]},
        "chat stop",
        arrives={"stop_sequences": ("stop", "stop_sequences", "stopSequences")},
    ),
    Case(
        "temperature, top_p, max_tokens, stream",
        {"temperature": 0.5, "top_p": 0.9, "stream": True},
        "the same chat fields",
        arrives={"temperature": ("temperature",), "top_p": ("top_p", "topP"), "max_tokens": _MAX_KEYS},
    ),
    Case(
        "top_k",
        {"top_k": 5},
        "vLLM, SGLang and llama.cpp take it; OpenAI does not",
        {"openai-compatible": "translated"},
    ),
    Case(
        "thinking, context_management, output_config, service_tier, mcp_servers, container",
        {"thinking": {"type": "adaptive"}, "context_management": {"edits": []}},
        "Anthropic features with no chat counterpart",
    ),
]

RESPONSES: list[Case] = [
    Case(
        "input (string, messages, input_text, input_image as a data: URL)",
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "x"},
                        {"type": "input_image", "image_url": "data:image/png;base64," + PNG},
                    ],
                }
            ]
        },
        "chat messages and content parts",
    ),
    Case(
        "input_image (https URL)",
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "x"},
                        {"type": "input_image", "image_url": "https://x/i.png"},
                    ],
                }
            ]
        },
        "a chat image_url part; Bedrock and Gemini take images inline only",
        _INLINE_ONLY,
    ),
    Case(
        "instructions, developer and system messages",
        {"instructions": "be brief", "input": [{"role": "developer", "content": "d"}, _USER]},
        "chat system/developer messages",
    ),
    Case(
        "function_call, function_call_output items",
        {
            "input": [
                _USER,
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "ok"},
            ]
        },
        "assistant tool_calls, tool messages",
    ),
    Case(
        "input_file part",
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
        "a file the model would not see changes the answer",
    ),
    Case(
        "reasoning items",
        {"input": [_USER, {"type": "reasoning", "summary": [], "encrypted_content": "e"}]},
        "only the model that wrote them can read them back",
    ),
    Case(
        "computer_call_output and other hosted-tool items",
        {"input": [{"type": "computer_call_output", "call_id": "c"}]},
        "no such tool on the other side",
    ),
    Case("tools: function", {"tools": [_FN]}, "chat function tools"),
    Case(
        "tools: namespace",
        {"tools": [_NS]},
        "flattened to `<namespace>__<name>` functions; calls mapped back with their namespace",
    ),
    Case(
        "tools: web_search, file_search, code_interpreter, custom, ...",
        {"tools": [_FN, {"type": "web_search"}]},
        "hosted or free-form tools run at OpenAI only",
    ),
    Case(
        "tools[].defer_loading",
        {"tools": [_FN, {**_FN, "name": "later", "defer_loading": True}]},
        "no tool search on the other side",
    ),
    Case(
        "tool_choice naming a dropped tool",
        {"tools": [{"type": "web_search"}], "tool_choice": {"type": "function", "name": "web_search"}},
        "forcing a tool that cannot run changes the answer",
    ),
    Case(
        "previous_response_id, conversation, background",
        {"previous_response_id": "resp_1"},
        "needs a provider that keeps response state",
    ),
    Case(
        "max_output_tokens, temperature, top_p, parallel_tool_calls",
        {"max_output_tokens": 5, "temperature": 0.1},
        "the chat equivalents",
        arrives={"max_output_tokens": _MAX_KEYS, "temperature": ("temperature",)},
    ),
    Case(
        "user",
        {"user": "u1"},
        "chat user; the Messages API's metadata.user_id; Converse and generateContent have no end-user field",
        _NO_USER,
        {"user": _USER_KEYS},
    ),
    Case(
        "text.format json_object",
        {"text": {"format": {"type": "json_object"}}},
        "chat response_format; generateContent's responseMimeType; the Messages API and Converse "
        "take JSON with a schema only",
        _NO_JSON_MODE,
        {"text.format": ("response_format", "responseMimeType")},
    ),
    Case(
        "text.format json_schema",
        {"text": {"format": {"type": "json_schema", "name": "r", "schema": _SCHEMA, "strict": True}}},
        "chat response_format; the Messages API's output_config.format, Converse's "
        "outputConfig.textFormat, generateContent's responseJsonSchema; Claude on Vertex "
        "documents no structured outputs for rawPredict",
        {"vertex (Claude)": "dropped"},
        {"text.format": ("response_format", "output_config", "outputConfig", "responseJsonSchema")},
    ),
    Case(
        "reasoning, include, prompt_cache_key, client_metadata, safety_identifier",
        {"reasoning": {"effort": "low"}, "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k"},
        "OpenAI features with no chat counterpart",
    ),
]

# What each case becomes on a translated path, when not "translated".
OUTCOMES: dict[str, str] = {
    "tool_result with tool_reference": "dropped",
    "thinking, redacted_thinking blocks": "dropped",
    "server tool blocks (server_tool_use, web_search_tool_result, ...)": "dropped",
    "document block": "refused",
    "tools[].defer_loading": "dropped",
    "server tools (web_search_20250305, code_execution, ...)": "dropped",
    "tool_choice naming a dropped tool": "refused",
    "top_k": "dropped",
    "thinking, context_management, output_config, service_tier, mcp_servers, container": "dropped",
    "input_file part": "refused",
    "reasoning items": "dropped",
    "computer_call_output and other hosted-tool items": "refused",
    "tools: web_search, file_search, code_interpreter, custom, ...": "dropped",
    "previous_response_id, conversation, background": "refused",
    "reasoning, include, prompt_cache_key, client_metadata, safety_identifier": "dropped",
}
FRONTS: dict[str, tuple[str, list[Case], Any]] = {
    "messages": ("`POST /v1/messages` (Anthropic Messages)", MESSAGES, messages),
    "responses": ("`POST /v1/responses` (OpenAI Responses)", RESPONSES, responses),
}


def usual(case: Case) -> str:
    """The case's outcome on a translated path, unless a column says otherwise."""
    return case.usual or OUTCOMES.get(case.part, "translated")


def expected(kind: str, case: Case, column: Column) -> str:
    """What the column should do with the case: pass it through where its upstream
    speaks the front door, else the case's outcome on a translated path."""
    if kind in column.native:
        return "refused" if column.key in case.refused_by else "passed"
    return case.expect.get(column.key, case.expect.get(column.type, usual(case)))
