"""The conformance cases of ``POST /v1/chat/completions`` (docs/conformance.md): each
request part a real client sends, and what becomes of it on each provider type. Native
on the OpenAI types (passed through) and on the mock (answered in-process as it came);
translated to the Messages API, Converse or generateContent on the others, where a
field either arrives in the field the provider documents, is dropped with notice, or
is refused with a 400 naming it."""

from __future__ import annotations

from typing import Any

from .conformance import _INLINE_ONLY, _MAX_KEYS, _NO_JSON_MODE, _NO_USER, _SCHEMA, _USER_KEYS, Case
from .toolturns import PNG

Json = dict[str, Any]
_USER = {"role": "user", "content": "hi"}
_TOOLS = [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}]
# Sampling settings generateContent has and the Messages API and Converse have not.
_GEMINI_ONLY = {"anthropic": "dropped", "bedrock": "dropped", "vertex (Claude)": "dropped"}


def chat(**fields: Any) -> Json:
    return {"model": "m", "messages": [_USER], **fields}


def _turns(*turns: Json) -> Json:
    return {"messages": list(turns)}


CHAT: list[Case] = [
    Case(
        "system, developer messages",
        _turns({"role": "system", "content": "be brief"}, {"role": "developer", "content": "d"}, _USER),
        "the Messages API's system, Converse's system, generateContent's systemInstruction",
        arrives={"system": ("system", "systemInstruction")},
    ),
    Case(
        "text, image_url (base64 data: URL)",
        _turns(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "x"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            }
        ),
        "image blocks: base64 source, Converse's image bytes, inlineData",
    ),
    Case(
        "image_url (https URL)",
        _turns(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "x"},
                    {"type": "image_url", "image_url": {"url": "https://x/i.png"}},
                ],
            }
        ),
        "the Messages API's url source; Bedrock and Gemini take images inline only",
        _INLINE_ONLY,
    ),
    Case(
        "tools, tool_choice (auto, required, named)",
        {"tools": _TOOLS, "tool_choice": "required"},
        "tools and tool_choice (any), Converse's toolConfig, generateContent's functionCallingConfig",
        arrives={"tool_choice": ("tool_choice", "toolChoice", "functionCallingConfig")},
    ),
    Case(
        "tool_choice none",
        {"tools": _TOOLS, "tool_choice": "none"},
        "tool_choice none, mode NONE; Converse has no none: the tools are left out",
    ),
    Case(
        "parallel_tool_calls: false",
        {"tools": _TOOLS, "parallel_tool_calls": False},
        "the Messages API's tool_choice.disable_parallel_tool_use; Converse and generateContent "
        "cannot keep a model to one call",
        {"bedrock": "dropped", "gemini": "dropped", "vertex (Gemini)": "dropped"},
        {"parallel_tool_calls": ("parallel_tool_calls", "disable_parallel_tool_use")},
    ),
    Case(
        "assistant tool_calls, tool messages",
        _turns(
            _USER,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ),
        "tool_use and tool_result blocks, toolUse and toolResult, functionCall and functionResponse",
    ),
    Case(
        "stop",
        {"stop": ["END"]},
        "stop_sequences, stopSequences",
        arrives={"stop": ("stop", "stop_sequences", "stopSequences")},
    ),
    Case(
        "max_tokens, max_completion_tokens",
        {"max_completion_tokens": 7},
        "max_tokens, maxTokens, maxOutputTokens",
        arrives={"max_completion_tokens": _MAX_KEYS},
    ),
    Case(
        "temperature, top_p",
        {"temperature": 0.5, "top_p": 0.9},
        "the same settings",
        arrives={"temperature": ("temperature",), "top_p": ("top_p", "topP")},
    ),
    Case(
        "n: 2",
        {"n": 2},
        "generateContent's candidateCount, each candidate a choice; the Messages API and Converse "
        "answer one: a client reading choices[1] would fail",
        {"anthropic": "refused", "bedrock": "refused", "vertex (Claude)": "refused"},
        {"n": ("n", "candidateCount")},
    ),
    Case(
        "logprobs, top_logprobs",
        {"logprobs": True, "top_logprobs": 2},
        "generateContent's responseLogprobs and logprobs, each chosen token with its top "
        "candidates; none from the Messages API or Converse: a client reading choices[].logprobs "
        "would fail",
        {"gemini": "translated", "vertex (Gemini)": "translated"},
        {"logprobs": ("logprobs", "responseLogprobs")},
        "refused",
        ("mock",),
    ),
    Case(
        "frequency_penalty, presence_penalty",
        {"frequency_penalty": 0.5, "presence_penalty": 0.5},
        "generateContent's frequencyPenalty, presencePenalty; the Messages API and Converse have none",
        _GEMINI_ONLY,
        {
            "frequency_penalty": ("frequency_penalty", "frequencyPenalty"),
            "presence_penalty": ("presence_penalty", "presencePenalty"),
        },
    ),
    Case(
        "seed",
        {"seed": 7},
        "generateContent's seed; the Messages API and Converse have none",
        _GEMINI_ONLY,
        {"seed": ("seed",)},
    ),
    Case(
        "logit_bias",
        {"logit_bias": {"50256": -100}},
        "token ids are OpenAI's tokenizer's: no counterpart elsewhere",
        arrives={"logit_bias": ("logit_bias",)},
        usual="dropped",
    ),
    Case(
        "response_format json_object",
        {"response_format": {"type": "json_object"}},
        "generateContent's responseMimeType; the Messages API and Converse take JSON with a schema only",
        _NO_JSON_MODE,
        {"response_format": ("response_format", "responseMimeType")},
    ),
    Case(
        "response_format json_schema",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": _SCHEMA}}},
        "the Messages API's output_config.format, Converse's outputConfig.textFormat, "
        "generateContent's responseJsonSchema; Claude on Vertex documents no structured outputs",
        {"vertex (Claude)": "dropped"},
        {"response_format": ("response_format", "output_config", "outputConfig", "responseJsonSchema")},
    ),
    Case(
        "user",
        {"user": "u1"},
        "the Messages API's metadata.user_id; Converse and generateContent have no end-user field",
        _NO_USER,
        {"user": _USER_KEYS},
    ),
    Case(
        "stream, stream_options.include_usage",
        {"stream": True, "stream_options": {"include_usage": True}},
        "each API's stream, written as chat chunks with the usage chunk",
    ),
    Case(
        "reasoning_effort",
        {"reasoning_effort": "low"},
        "thinking budgets and levels are not efforts: no faithful mapping",
        arrives={"reasoning_effort": ("reasoning_effort",)},
        usual="dropped",
    ),
    Case(
        "store, metadata",
        {"store": True, "metadata": {"k": "v"}},
        "OpenAI's stored completions: nothing is kept elsewhere",
        arrives={"store": ("store",), "metadata": ("metadata",)},
        usual="dropped",
    ),
    Case(
        "service_tier",
        {"service_tier": "flex"},
        "Converse's serviceTier.type, generateContent's serviceTier (flex, priority); the "
        "Messages API has neither",
        {"bedrock": "translated", "gemini": "translated", "vertex (Gemini)": "translated"},
        {"service_tier": ("service_tier", "serviceTier")},
        "dropped",
    ),
    Case(
        "modalities, audio",
        {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}},
        "no spoken answer elsewhere: a client reading message.audio would fail",
        arrives={"modalities": ("modalities",), "audio": ("audio",)},
        usual="refused",
        refused_by=("mock",),
    ),
]
CHAT_FRONT = ("`POST /v1/chat/completions` (OpenAI Chat Completions)", CHAT, chat)
