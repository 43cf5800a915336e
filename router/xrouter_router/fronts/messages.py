"""The Anthropic Messages API (``POST /v1/messages``) for providers that speak chat
completions (``openai``, ``openai-compatible``, ``azure-openai``, ``mock``): the
request as a chat completion (text, images, tools, tool results), the chat answer as
a ``message``, and chat chunks as Anthropic stream events (``messages_stream.py``).
docs/router.md ("Anthropic Messages API") lists what translates."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from ..errors import bad_request
from ..providers import StreamTranslator, Usage
from ..providers.base import Json
from .base import Notes
from .messages_stream import MessagesStream, message_usage, new_id, stop_reason

# OpenAI's own models take max_completion_tokens (reasoning models refuse max_tokens);
# other OpenAI-compatible servers are safest with the older name.
_MAX_TOKENS = {"openai": "max_completion_tokens", "azure-openai": "max_completion_tokens"}
# Blocks that cannot run on the other side, dropped with notice: the model's own
# reasoning (no other provider can take it back) and the traces of server-side tools
# (web search, code execution, MCP, tool search) whose results only Anthropic can read.
_DROPPED = frozenset(
    {
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
    }
)
# The request fields translated below; any other is dropped with notice.
_TRANSLATED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "stream",
        "stop_sequences",
        "metadata",
        "tools",
        "tool_choice",
    }
)
# OpenAI caps ``user`` (and its successor ``safety_identifier``) at 64 characters.
USER_MAX = 64


def _system(system: Any, param: str = "system") -> str:
    if isinstance(system, str):
        return system
    texts = []
    for i, block in enumerate(system):
        if (
            not isinstance(block, dict)
            or block.get("type") != "text"
            or not isinstance(block.get("text"), str)
        ):
            raise bad_request("system blocks must be text blocks", f"{param}[{i}]")
        texts.append(block["text"])
    return "\n\n".join(texts)


def _image(block: Json, param: str) -> Json:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        media, data = source.get("media_type"), source.get("data")
        if isinstance(media, str) and isinstance(data, str):
            return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if isinstance(source, dict) and source.get("type") == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise bad_request("an image needs a base64 or url source", f"{param}.source")


def _result(content: Any, param: str, notes: Notes) -> tuple[str, list[Json]]:
    """A tool_result's text, and its images: a chat ``tool`` message carries only
    text, so the images follow in the user turn. A ``tool_reference`` (Claude Code's
    tool search loading a deferred tool) has nothing to load on the other side."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise bad_request("tool_result content must be a string or a list of blocks", param)
    texts: list[str] = []
    images: list[Json] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "image":
            images.append(_image(block, f"{param}[{j}]"))
        elif kind == "tool_reference":
            notes.drop("tool_result.tool_reference")
        else:
            raise bad_request(
                "only text, image and tool_reference blocks can be translated in a tool_result",
                f"{param}[{j}]",
            )
    return "\n".join(texts), images


def _message(msg: Json, param: str, notes: Notes) -> list[Json]:
    """One Anthropic message as chat messages: a user turn's tool results become
    ``tool`` messages, ahead of whatever else the turn says; a system turn stays where
    it is, as a chat system message."""
    role, content = msg["role"], msg.get("content")
    if role == "system":
        return [{"role": "system", "content": _system(content, f"{param}.content")}]
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    parts: list[Json] = []
    calls: list[Json] = []
    results: list[Json] = []
    for j, block in enumerate(content or []):
        where = f"{param}.content[{j}]"
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image" and role == "user":
            parts.append(_image(block, where))
        elif kind == "tool_use" and role == "assistant":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise bad_request("tool_use needs id and name", where)
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": arguments},
                }
            )
        elif kind == "tool_result" and role == "user":
            if not isinstance(block.get("tool_use_id"), str):
                raise bad_request("tool_result needs tool_use_id", f"{where}.tool_use_id")
            text, images = _result(block.get("content"), f"{where}.content", notes)
            if block.get("is_error"):
                text = "Error: " + text
            results.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
            parts.extend(images)
        elif kind in _DROPPED:
            notes.drop(f"content.{kind}")
        else:
            raise bad_request(
                f"content block type {kind!r} cannot be translated for this model's provider", where
            )
    out = results
    if role == "assistant":
        text = "".join(p["text"] for p in parts)
        turn: Json = {"role": "assistant", "content": text or None}
        if calls:
            turn["tool_calls"] = calls
        if text or calls:
            out.append(turn)
    elif parts:
        only_text = all(p["type"] == "text" for p in parts)
        out.append({"role": "user", "content": "".join(p["text"] for p in parts) if only_text else parts})
    return out


def _tools(tools: list[Any], notes: Notes) -> list[Json]:
    """Client tools as chat functions. Server tools (web search, code execution, ...:
    a ``type`` other than ``custom``) run at Anthropic only, and a tool with
    ``defer_loading`` is meant to stay out of the prompt until a tool search finds it,
    which no other provider does: both are dropped with notice."""
    out = []
    for tool in tools:
        name = tool.get("name")
        if tool.get("type") not in (None, "custom"):
            notes.drop(f"tools.{tool.get('type')}")
            continue
        if tool.get("defer_loading"):
            notes.drop(f"tools.defer_loading({name})")
            continue
        fn: Json = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object"}}
        if isinstance(tool.get("description"), str):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Json, chat: Json) -> None:
    kind = choice.get("type")
    if kind == "tool" and choice.get("name") not in {t["function"]["name"] for t in chat.get("tools", ())}:
        raise bad_request(
            f"tool_choice names {choice.get('name')!r}, a tool this model's provider cannot run "
            "(a server tool or a deferred one)",
            "tool_choice.name",
        )
    if kind == "auto":
        chat["tool_choice"] = "auto"
    elif kind == "any":
        chat["tool_choice"] = "required"
    elif kind == "none":
        chat["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise bad_request("tool_choice.type must be auto, any, tool or none", "tool_choice.type")
    if choice.get("disable_parallel_tool_use"):
        chat["parallel_tool_calls"] = False


def _user(user_id: str) -> str:
    """Claude Code's ``user_id`` is a JSON string of ~150 characters: over the limit, a
    stable digest of it (64 hex characters) still tells users apart."""
    return user_id if len(user_id) <= USER_MAX else hashlib.sha256(user_id.encode()).hexdigest()


class MessagesFront:
    def to_chat(self, payload: Json, provider_type: str, notes: Notes | None = None) -> Json:
        notes = notes if notes is not None else Notes()
        messages: list[Json] = []
        if payload.get("system"):
            messages.append({"role": "system", "content": _system(payload["system"])})
        for i, msg in enumerate(payload["messages"]):
            messages.extend(_message(msg, f"messages[{i}]", notes))
        chat: Json = {"model": payload["model"], "messages": messages}
        chat[_MAX_TOKENS.get(provider_type, "max_tokens")] = payload["max_tokens"]
        for name in ("temperature", "top_p", "stream"):
            if payload.get(name) is not None:
                chat[name] = payload[name]
        if payload.get("stop_sequences"):
            chat["stop"] = payload["stop_sequences"]
        metadata = payload.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
            chat["user"] = _user(metadata["user_id"])
            notes.origin["user"] = "metadata.user_id"  # what a provider's drop names
        if payload.get("tools"):
            tools = _tools(payload["tools"], notes)
            if tools:
                chat["tools"] = tools
            if isinstance(payload.get("tool_choice"), dict):
                _tool_choice(payload["tool_choice"], chat)
                notes.origin["parallel_tool_calls"] = "tool_choice.disable_parallel_tool_use"
                if not tools:
                    chat.pop("tool_choice", None)
                    chat.pop("parallel_tool_calls", None)
        for name, value in payload.items():
            if value is None or name in _TRANSLATED:
                continue
            if name == "top_k" and provider_type == "openai-compatible":
                chat["top_k"] = value  # vLLM, SGLang, llama.cpp take it; OpenAI does not
            else:
                notes.drop(name)
        return chat

    def from_chat(self, data: Json) -> bytes:
        choice = (data.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        content: list[Json] = []
        if message.get("content"):
            content.append({"type": "text", "text": str(message["content"])})
        refusal = message.get("refusal")
        if isinstance(refusal, str) and refusal:
            content.append({"type": "text", "text": refusal})
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            try:
                args = orjson.loads(fn.get("arguments") or "{}")
            except orjson.JSONDecodeError:
                args = {}
            content.append({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": args})
        reason = stop_reason(choice.get("finish_reason"), choice.get("stop_reason"), bool(refusal))
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        u = Usage(
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
            int((details or {}).get("cached_tokens") or 0),
        )
        body = {
            "id": new_id(),
            "type": "message",
            "role": "assistant",
            "model": data.get("model", ""),
            "content": content,
            "stop_reason": reason,
            "stop_sequence": choice.get("stop_reason") if reason == "stop_sequence" else None,
            "usage": message_usage(u),
        }
        return orjson.dumps(body)

    def stream(self, inner: StreamTranslator) -> StreamTranslator:
        return MessagesStream(inner)


FRONT = MessagesFront()
