"""A cached chat completion replayed as the stream a client asked for: the same
chunks an OpenAI stream of that answer ends up as, sent at once. Per choice: one
chunk with the role and the whole content (and tool calls, refusal, logprobs), one
with the finish reason; then the usage chunk if ``stream_options.include_usage``
asked for it; then ``[DONE]``."""

from __future__ import annotations

from typing import Any

import orjson

from . import sse


def replayable(kind: str, body: bytes) -> dict[str, Any] | None:
    """The stored answer, if it can be replayed as a stream (a chat completion)."""
    if kind != "chat":
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("object") != "chat.completion":
        return None
    choices = data.get("choices")
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        return None
    return data


def as_stream(data: dict[str, Any], include_usage: bool) -> bytes:
    """The SSE bytes of a chat completion (from ``replayable``)."""
    head = {
        "id": data.get("id"),
        "object": "chat.completion.chunk",
        "created": data.get("created"),
        "model": data.get("model"),
    }
    if "system_fingerprint" in data:
        head["system_fingerprint"] = data["system_fingerprint"]
    out: list[bytes] = []
    for choice in data["choices"]:
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        delta: dict[str, Any] = {"role": message.get("role", "assistant"), "content": message.get("content")}
        if message.get("refusal") is not None:
            delta["refusal"] = message["refusal"]
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            delta["tool_calls"] = [
                {"index": i, **c} if isinstance(c, dict) else c for i, c in enumerate(calls)
            ]
        index = choice.get("index", 0)
        first: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": None}
        if choice.get("logprobs") is not None:
            first["logprobs"] = choice["logprobs"]
        out.append(sse.encode(orjson.dumps({**head, "choices": [first]})))
        last = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}
        out.append(sse.encode(orjson.dumps({**head, "choices": [last]})))
    if include_usage and isinstance(data.get("usage"), dict):
        out.append(sse.encode(orjson.dumps({**head, "choices": [], "usage": data["usage"]})))
    out.append(sse.DONE)
    return b"".join(out)


class Assembler:
    """Rebuilds the chat completion a stream sent to the client, so a streamed answer
    can be cached too. ``result`` is None unless the stream ended with ``[DONE]``,
    without an error event, within ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.parser = sse.SSEParser()
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.done = False
        self.failed = False

    def feed(self, chunk: bytes) -> None:
        if self.failed:
            return
        self.size += len(chunk)
        if self.size > self.limit:
            self.failed = True
            return
        for ev in self.parser.feed(chunk):
            if ev.data == b"[DONE]":
                self.done = True
                continue
            try:
                data = orjson.loads(ev.data)
                self._event(data)
            except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
                self.failed = True
                return

    def _event(self, data: Any) -> None:
        if not isinstance(data, dict) or "error" in data:
            raise ValueError("not a chunk")
        for field in ("id", "created", "model", "system_fingerprint"):
            if field in data and field not in self.head:
                self.head[field] = data[field]
        for choice in data.get("choices") or ():
            index = choice["index"]
            c = self.choices.setdefault(
                index,
                {"index": index, "message": {"role": "assistant", "content": None}, "finish_reason": None},
            )
            delta, message = choice.get("delta") or {}, c["message"]
            if isinstance(delta.get("content"), str):
                message["content"] = (message["content"] or "") + delta["content"]
            if isinstance(delta.get("refusal"), str):
                message["refusal"] = (message.get("refusal") or "") + delta["refusal"]
            for call in delta.get("tool_calls") or ():
                calls = message.setdefault("tool_calls", [])
                i = call["index"]
                while len(calls) <= i:
                    calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                slot = calls[i]
                if call.get("id"):
                    slot["id"] = call["id"]
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason") is not None:
                c["finish_reason"] = choice["finish_reason"]

    def result(self, usage: dict[str, int]) -> bytes | None:
        if self.failed or not self.done or not self.choices:
            return None
        body = {
            **self.head,
            "object": "chat.completion",
            "choices": [self.choices[i] for i in sorted(self.choices)],
            "usage": usage,
        }
        out = orjson.dumps(body)
        return out if len(out) <= self.limit else None
