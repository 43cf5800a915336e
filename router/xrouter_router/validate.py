"""Strict checks on the request fields the router reads or routes on. Everything
else passes through to the provider untouched."""

from __future__ import annotations

from typing import Any

import orjson

from .errors import bad_request

Json = dict[str, Any]
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def parse(body: bytes, kind: str) -> Json:
    """The request body as a dict, or a 400 naming the offending field."""
    if not body:
        raise bad_request("request body is empty; expected a JSON object")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request("request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise bad_request("request body must be a JSON object")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("'model' is required and must be a non-empty string", "model")
    _opt(payload, "stream", bool, "a boolean")
    _opt(payload, "user", str, "a string")
    options = _opt(payload, "stream_options", dict, "an object")
    if options is not None and not isinstance(options.get("include_usage", False), bool):
        raise bad_request("'stream_options.include_usage' must be a boolean", "stream_options.include_usage")
    for name in ("max_tokens", "max_completion_tokens", "n"):
        value = _opt(payload, name, int, "an integer")
        if value is not None and (isinstance(value, bool) or value < 1):
            raise bad_request(f"'{name}' must be a positive integer", name)
    for name in ("temperature", "top_p"):
        value = payload.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise bad_request(f"'{name}' must be a number", name)
    if kind == "chat":
        _messages(payload.get("messages"))
        tools = _opt(payload, "tools", list, "a list")
        for i, tool in enumerate(tools or []):
            if not isinstance(tool, dict) or not isinstance(tool.get("function"), dict):
                raise bad_request("each tool must be an object with a 'function' object", f"tools[{i}]")
    elif kind == "completions":
        prompt = payload.get("prompt")
        if not isinstance(prompt, str | list):
            raise bad_request("'prompt' is required: a string or a list", "prompt")
    elif kind == "responses":
        _responses(payload)
    elif kind == "messages":
        _anthropic(payload)
    elif kind == "embeddings":
        if not isinstance(payload.get("input"), str | list):
            raise bad_request("'input' is required: a string or a list", "input")
        if payload.get("stream"):
            raise bad_request("embeddings cannot be streamed", "stream")
    return payload


def _opt(payload: Json, name: str, kind: type, what: str) -> Any:
    value = payload.get(name)
    if value is not None and not isinstance(value, kind):
        raise bad_request(f"'{name}' must be {what}", name)
    return value


def _messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' is required and must be a non-empty list", "messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise bad_request("each message must be an object", f"messages[{i}]")
        role = msg.get("role")
        if role not in _ROLES:
            raise bad_request(f"'role' must be one of {sorted(_ROLES)}", f"messages[{i}].role")
        content = msg.get("content")
        if content is not None and not isinstance(content, str | list):
            raise bad_request("'content' must be a string, a list of parts or null", f"messages[{i}].content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise bad_request(
                        "each content part must be an object with a 'type'", f"messages[{i}].content[{j}]"
                    )


def _responses(payload: Json) -> None:
    items = payload.get("input")
    stateful = payload.get("previous_response_id") or payload.get("conversation") or payload.get("prompt")
    if items is None and not stateful:
        raise bad_request("'input' is required: a string or a list of input items", "input")
    if items is not None and not isinstance(items, str | list):
        raise bad_request("'input' must be a string or a list of input items", "input")
    for i, item in enumerate(items if isinstance(items, list) else ()):
        if not isinstance(item, dict):
            raise bad_request("each input item must be an object", f"input[{i}]")
    _opt(payload, "instructions", str, "a string")
    _opt(payload, "previous_response_id", str, "a string")
    value = _opt(payload, "max_output_tokens", int, "an integer")
    if value is not None and (isinstance(value, bool) or value < 1):
        raise bad_request("'max_output_tokens' must be a positive integer", "max_output_tokens")
    for i, tool in enumerate(_opt(payload, "tools", list, "a list") or ()):
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise bad_request("each tool must be an object with a 'type'", f"tools[{i}]")


def _anthropic(payload: Json) -> None:
    """The Anthropic Messages request: turns of user, assistant or system (the API
    takes a system turn anywhere in ``messages``: Claude Code sends its environment so),
    content is a string or a list of typed blocks, and max_tokens is required."""
    value = payload.get("max_tokens")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise bad_request("'max_tokens' is required and must be a positive integer", "max_tokens")
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' is required and must be a non-empty list", "messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise bad_request("each message must be an object", f"messages[{i}]")
        if msg.get("role") not in ("user", "assistant", "system"):
            raise bad_request("'role' must be 'user', 'assistant' or 'system'", f"messages[{i}].role")
        _blocks(msg.get("content"), f"messages[{i}].content")
    system = payload.get("system")
    if system is not None and not isinstance(system, str):
        _blocks(system, "system")
    for i, tool in enumerate(_opt(payload, "tools", list, "a list") or ()):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise bad_request("each tool must be an object with a 'name'", f"tools[{i}]")
    _opt(payload, "tool_choice", dict, "an object")
    _opt(payload, "metadata", dict, "an object")
    stops = _opt(payload, "stop_sequences", list, "a list")
    if stops is not None and not all(isinstance(s, str) for s in stops):
        raise bad_request("'stop_sequences' must be a list of strings", "stop_sequences")


def _blocks(content: Any, param: str) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        what = "a string or a list of content blocks"
        raise bad_request(f"'{param.rsplit('.', 1)[-1]}' must be {what}", param)
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise bad_request("each content block must be an object with a 'type'", f"{param}[{j}]")
