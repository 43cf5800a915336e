"""Bedrock's Converse API ↔ OpenAI chat completions: the request (messages, system,
tools and tool results, images, inference settings), the answer, and the
ConverseStream events. The request goes through ``to_anthropic`` first: Converse's
content blocks are Anthropic's under other names, so the checks and the merging of
consecutive same-role turns are shared."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import orjson

from .. import sse
from ..errors import bad_request, error_body
from ..notes import notes
from .anthropic import to_anthropic
from .base import ChunkWriter, Json, Usage, usage_json
from .chatfields import account, service_tier
from .structured import converse_format

STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}


def _image(block: Json, param: str) -> Json:
    source = block["source"]
    if source.get("type") != "base64":
        raise bad_request("Bedrock takes images inline only: send a data: URL (base64)", param)
    fmt = _FORMATS.get(str(source.get("media_type", "")).lower())
    if fmt is None:
        raise bad_request("Bedrock takes png, jpeg, gif or webp images", param)
    try:
        base64.b64decode(source["data"], validate=True)
    except ValueError:
        raise bad_request("the image's base64 data is invalid", param) from None
    return {"image": {"format": fmt, "source": {"bytes": source["data"]}}}


def _block(block: Json, param: str) -> Json:
    kind = block["type"]
    if kind == "text":
        return {"text": block["text"]}
    if kind == "image":
        return _image(block, param)
    if kind == "tool_use":
        return {"toolUse": {"toolUseId": block["id"], "name": block["name"], "input": block["input"]}}
    # tool_result: to_anthropic makes no other kind
    return {"toolResult": {"toolUseId": block["tool_use_id"], "content": [{"text": block["content"]}]}}


def to_converse(payload: Json) -> Json:
    """An OpenAI chat completion request as a Converse request body."""
    a = to_anthropic(payload, "", False)
    messages = []
    for i, msg in enumerate(a["messages"]):
        blocks = [_block(b, f"messages[{i}].content") for b in msg["content"]]
        blocks = [b for b in blocks if b.get("text") != ""]  # Converse refuses empty text blocks
        if blocks:
            messages.append({"role": msg["role"], "content": blocks})
    body: Json = {"messages": messages}
    if "system" in a:
        body["system"] = [{"text": a["system"]}]
    inference: Json = {}
    max_tokens = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if max_tokens:
        inference["maxTokens"] = max_tokens
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("stop_sequences", "stopSequences"),
    ):
        if ours in a:
            inference[theirs] = a[ours]
    if inference:
        body["inferenceConfig"] = inference
    output = converse_format(payload)
    if output is not None:
        body["outputConfig"] = output
    if payload.get("user") is not None:
        notes().drop("user")  # Converse has no end-user field
    # Penalties, seeds, top_k: Converse's inferenceConfig has none of them, and its
    # additionalModelRequestFields differ per model.
    tier = service_tier(payload)
    if tier is not None:
        body["serviceTier"] = {"type": tier}
    account(payload, frozenset({"service_tier"} if tier else ()))
    tools = a.get("tools")
    choice = a.get("tool_choice", {}).get("type")
    if tools and choice == "none":
        if any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"]):
            raise bad_request("Bedrock cannot turn tools off in a conversation that used them", "tool_choice")
        tools = None
    if tools:
        specs = [
            {
                "toolSpec": {
                    k: v
                    for k, v in (
                        ("name", t["name"]),
                        ("description", t.get("description")),
                        ("inputSchema", {"json": t["input_schema"]}),
                    )
                    if v
                }
            }
            for t in tools
        ]
        config: Json = {"tools": specs}
        if choice in ("auto", "any"):
            config["toolChoice"] = {choice: {}}
        elif choice == "tool":
            config["toolChoice"] = {"tool": {"name": a["tool_choice"]["name"]}}
        body["toolConfig"] = config
    return body


def usage(u: Any) -> Usage:
    """Converse ``usage``; inputTokens leaves out the cache reads and writes."""
    if not isinstance(u, dict):
        return Usage()

    def n(key: str) -> int:
        v = u.get(key)
        return v if isinstance(v, int) and v >= 0 else 0

    read = n("cacheReadInputTokens")
    return Usage(n("inputTokens") + read + n("cacheWriteInputTokens"), n("outputTokens"), read)


def from_converse(data: Json, model: str) -> tuple[Json, Usage]:
    """A Converse answer as an OpenAI chat completion."""
    texts: list[str] = []
    calls: list[Json] = []
    for block in data["output"]["message"]["content"]:
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            fn = {"name": use["name"], "arguments": orjson.dumps(use.get("input", {})).decode()}
            calls.append({"id": use["toolUseId"], "type": "function", "function": fn})
    message: Json = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    u = usage(data.get("usage"))
    finish = STOP.get(str(data.get("stopReason")), "stop")
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage_json(u),
    }
    return body, u


class ConverseStream(ChunkWriter):
    """ConverseStream events (re-framed as SSE by the adapter: the event type as the
    event name, its JSON as the data) → OpenAI ``chat.completion.chunk`` events."""

    def __init__(self, include_usage: bool, public_model: str) -> None:
        super().__init__(include_usage, public_model, f"chatcmpl-{uuid.uuid4().hex}")
        self.tools: dict[int, int] = {}  # content block index → tool call index

    def feed(self, event: str | None, data: bytes, raw: bytes) -> bytes:
        ev = orjson.loads(data)
        if event == "messageStart":
            return self._chunk({"role": "assistant", "content": ""})
        if event == "contentBlockStart":
            use = (ev.get("start") or {}).get("toolUse")
            if not isinstance(use, dict):
                return b""
            n = self.tools[ev.get("contentBlockIndex", 0)] = len(self.tools)
            return self._tool_start(n, use.get("toolUseId"), use.get("name"))
        if event == "contentBlockDelta":
            delta = ev.get("delta") or {}
            if isinstance(delta.get("text"), str):
                return self._chunk({"content": delta["text"]})
            if isinstance(delta.get("toolUse"), dict):
                n = self.tools.get(ev.get("contentBlockIndex", 0), 0)
                return self._tool_args(n, delta["toolUse"].get("input", ""))
            return b""  # reasoning and citations: not in chat completions
        if event == "messageStop":
            return self._chunk({}, STOP.get(str(ev.get("stopReason")), "stop"))
        if event == "metadata":
            self.usage = usage(ev.get("usage"))
            return self._end()
        if event == "exception":
            self.done = True
            return sse.encode(error_body(502, f"{ev.get('type')}: {ev.get('message')}"))
        return b""
