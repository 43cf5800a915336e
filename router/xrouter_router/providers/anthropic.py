"""``anthropic``: OpenAI chat completions translated to the Messages API and back,
including the system prompt, tools and tool calls, streaming events and usage."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

from .. import sse
from ..errors import bad_request, error_body
from .base import Adapter, ChunkWriter, Json, StreamTranslator, Usage, usage_json
from .chatfields import account
from .passthrough import ANTHROPIC_BETA, CLIENT_VERSION, MessagesPassStream, anthropic_usage
from .structured import messages_format

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
# The chat fields the Messages API takes besides chatfields.COMMON.
MESSAGES_FIELDS = frozenset({"parallel_tool_calls", "top_k"})
_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def _text(content: Any, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise bad_request("only text parts are supported here", param)
        return "\n".join(parts)
    raise bad_request("content must be a string or a list of parts", param)


def _blocks(content: Any, param: str) -> list[Json]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request("content must be a string or a list of parts", param)
    blocks: list[Json] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            url = str(part["image_url"].get("url", ""))
            if url.startswith("data:") and ";base64," in url:
                media, data = url[5:].split(";base64,", 1)
                blocks.append(
                    {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
                )
            else:
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
        else:
            raise bad_request("unsupported content part", f"{param}[{i}]")
    return blocks


def to_anthropic(payload: Json, upstream_model: str, stream: bool) -> Json:
    """An OpenAI chat completion request as an Anthropic Messages request (without
    ``response_format``: ``messages_format`` says how the Messages API takes it, and
    Converse and generateContent, which start from this, have their own)."""
    system: list[str] = []
    messages: list[Json] = []

    def add(role: str, blocks: list[Json]) -> None:
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})

    for i, msg in enumerate(payload["messages"]):
        role, param = msg["role"], f"messages[{i}]"
        if role in ("system", "developer"):
            system.append(_text(msg.get("content"), f"{param}.content"))
        elif role == "user":
            add("user", _blocks(msg.get("content"), f"{param}.content"))
        elif role == "assistant":
            blocks = _blocks(msg.get("content"), f"{param}.content")
            for j, call in enumerate(msg.get("tool_calls") or []):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise bad_request("tool call needs function.name", f"{param}.tool_calls[{j}]")
                try:
                    args = orjson.loads(fn.get("arguments") or "{}")
                except orjson.JSONDecodeError as exc:
                    raise bad_request(
                        "function.arguments is not JSON", f"{param}.tool_calls[{j}].function.arguments"
                    ) from exc
                blocks.append({"type": "tool_use", "id": call.get("id"), "name": fn["name"], "input": args})
            add("assistant", blocks)
        elif role == "tool":
            if not isinstance(msg.get("tool_call_id"), str):
                raise bad_request("tool messages need tool_call_id", f"{param}.tool_call_id")
            result = {
                "type": "tool_result",
                "tool_use_id": msg["tool_call_id"],
                "content": _text(msg.get("content"), f"{param}.content"),
            }
            add("user", [result])
        else:
            raise bad_request(f"unsupported role {role!r}", f"{param}.role")

    body: Json = {
        "model": upstream_model,
        "messages": messages,
        "max_tokens": payload.get("max_completion_tokens") or payload.get("max_tokens") or DEFAULT_MAX_TOKENS,
    }
    if system:
        body["system"] = "\n\n".join(system)
    for key in ("temperature", "top_p", "top_k"):  # top_k: vLLM's and llama.cpp's chat field
        if payload.get(key) is not None:
            body[key] = payload[key]
    stop = payload.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if isinstance(payload.get("user"), str):
        body["metadata"] = {"user_id": payload["user"]}
    tools = payload.get("tools")
    if tools:
        body["tools"] = [_tool(t, i) for i, t in enumerate(tools)]
    choice = payload.get("tool_choice")
    if choice is not None and tools:
        body["tool_choice"] = _tool_choice(choice)
    if payload.get("parallel_tool_calls") is False and tools:
        # At most one call per answer: the Messages API says so on its tool_choice
        # (auto when the client named none; "none" calls nothing anyway).
        chosen = body.setdefault("tool_choice", {"type": "auto"})
        if chosen["type"] != "none":
            chosen["disable_parallel_tool_use"] = True
    if stream:
        body["stream"] = True
    return body


def _tool(tool: Any, i: int) -> Json:
    fn = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise bad_request("tools need type=function and function.name", f"tools[{i}]")
    out: Json = {"name": fn["name"], "input_schema": fn.get("parameters") or {"type": "object"}}
    if fn.get("description"):
        out["description"] = fn["description"]
    return out


def _tool_choice(choice: Any) -> Json:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"type": "tool", "name": choice["function"].get("name")}
    raise bad_request("unsupported tool_choice", "tool_choice")


def from_anthropic(data: Json, public_model: str) -> tuple[Json, Usage]:
    """An Anthropic Messages response as an OpenAI chat completion."""
    texts: list[str] = []
    calls: list[Json] = []
    for block in data.get("content") or []:
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input", {})).decode(),
                    },
                }
            )
    message: Json = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    usage = anthropic_usage(data.get("usage"))
    body = {
        "id": data.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("model", public_model),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _STOP.get(data.get("stop_reason") or "", "stop"),
            }
        ],
        "usage": usage_json(usage),
    }
    return body, usage


class AnthropicStream(ChunkWriter):
    """Anthropic stream events → OpenAI ``chat.completion.chunk`` events."""

    def __init__(self, include_usage: bool, public_model: str) -> None:
        super().__init__(include_usage, public_model)
        self.tool_index: dict[int, int] = {}

    def feed(self, event: str | None, data: bytes, raw: bytes) -> bytes:
        try:
            ev = orjson.loads(data)
        except orjson.JSONDecodeError:
            return b""
        kind = ev.get("type") if isinstance(ev, dict) else None
        if kind == "message_start":
            msg = ev.get("message") or {}
            self.id = msg.get("id", "")
            self.model = msg.get("model", self.model)
            self.usage = anthropic_usage(msg.get("usage"))
            return self._chunk({"role": "assistant", "content": ""})
        if kind == "content_block_start":
            block = ev.get("content_block") or {}
            if block.get("type") == "tool_use":
                n = self.tool_index[ev.get("index", 0)] = len(self.tool_index)
                return self._tool_start(n, block.get("id"), block.get("name"))
            return b""
        if kind == "content_block_delta":
            delta = ev.get("delta") or {}
            if delta.get("type") == "text_delta":
                text = delta.get("text", "")
                self.chars += len(text) if isinstance(text, str) else 0
                return self._chunk({"content": text})
            if delta.get("type") == "input_json_delta":
                n = self.tool_index.get(ev.get("index", 0), 0)
                part = delta.get("partial_json", "")
                self.chars += len(part) if isinstance(part, str) else 0
                return self._tool_args(n, part)
            return b""
        if kind == "message_delta":
            out = (ev.get("usage") or {}).get("output_tokens")
            if isinstance(out, int):
                self.usage.completion = out
            reason = (ev.get("delta") or {}).get("stop_reason")
            return self._chunk({}, _STOP.get(reason or "", "stop")) if reason else b""
        if kind == "message_stop":
            return self._end()
        if kind == "error":
            err = ev.get("error") or {}
            self.done = self.failed = True
            return sse.encode(error_body(502, str(err.get("message", "upstream error"))))
        return b""


class AnthropicAdapter(Adapter):
    """Chat completions are translated; ``messages`` (the router's own
    ``/v1/messages``) passes through."""

    def supports(self, kind: str) -> bool:
        return kind in ("chat", "messages")

    def _client_headers(self) -> list[tuple[bytes, bytes]] | None:
        """The router's headers with the client's ``anthropic-version`` and
        ``anthropic-beta`` (the pass-through's: both change what the API accepts), or
        None when the client sent neither."""
        beta, version = ANTHROPIC_BETA.get(), CLIENT_VERSION.get()
        if beta is None and version is None:
            return None
        headers = [h for h in self._headers if version is None or h[0] != b"anthropic-version"]
        if version is not None:
            headers.append((b"anthropic-version", version))
        if beta is not None:
            headers.append((b"anthropic-beta", beta))
        return headers

    async def open(self, kind: str, payload: Json, upstream_model: str, stream: bool) -> httpx.Response:
        client = self._client_headers() if kind == "messages" else None
        if client is None:
            return await super().open(kind, payload, upstream_model, stream)
        content = self.body(kind, payload, upstream_model, stream)
        headers = [*client, (b"content-length", str(len(content)).encode())]
        request = httpx.Request(
            "POST",
            self.url(kind, upstream_model),
            headers=headers,
            stream=httpx.ByteStream(content),
            extensions=self._extensions,
        )
        request.read()
        return await self._clients.get(self.name).send(request, stream=True)

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return headers

    def url(self, kind: str, upstream_model: str) -> str:
        return self.base_url + ("/messages" if self.base_url.endswith("/v1") else "/v1/messages")

    async def count_tokens(self, payload: Json, upstream_model: str) -> httpx.Response:
        """``/v1/messages/count_tokens`` passed through (body read)."""
        request = httpx.Request(
            "POST",
            self.url("messages", upstream_model) + "/count_tokens",
            headers=self._client_headers() or self._headers,
            content=orjson.dumps({**payload, "model": upstream_model}),
            extensions=self._extensions,
        )
        return await self._clients.get(self.name).send(request)

    def body(self, kind: str, payload: Json, upstream_model: str, stream: bool) -> bytes:
        if kind == "messages":
            return orjson.dumps({**payload, "model": upstream_model})
        body = to_anthropic(payload, upstream_model, stream)
        account(payload, MESSAGES_FIELDS)
        output = messages_format(payload)
        if output is not None:
            body["output_config"] = output
        return orjson.dumps(body)

    def response(self, kind: str, body: bytes) -> tuple[bytes, Usage]:
        data = self.json_object(body)
        if kind == "messages":
            return body, anthropic_usage(data.get("usage"))
        try:
            out, usage = from_anthropic(data, str(data.get("model", "")))
        except (AttributeError, TypeError, ValueError):  # a shape the Messages API never sends
            raise self.garbage("an unexpected answer") from None
        return orjson.dumps(out), usage

    def translator(self, kind: str, include_usage: bool, public_model: str) -> StreamTranslator:
        if kind == "messages":
            return MessagesPassStream(include_usage)
        return AnthropicStream(include_usage, public_model)

    def error_body(self, status: int, body: bytes) -> bytes:
        try:
            err = orjson.loads(body).get("error") or {}
            message = str(err.get("message", "upstream error"))
        except (orjson.JSONDecodeError, AttributeError):
            message = "upstream error"
        return error_body(status, message)
