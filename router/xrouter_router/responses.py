"""The Responses API (``POST /v1/responses``) for providers that only speak chat
completions (``anthropic``, ``mock``): the request as a chat completion, the chat
answer as a ``response`` object, and chat chunks as Responses stream events.
docs/router.md ("Responses API") lists what translates."""

from __future__ import annotations

from typing import Any

import orjson

from .errors import bad_request
from .providers import StreamTranslator, Usage
from .providers.base import Json
from .responses_events import ResponsesStream, call_item, message_item, new_id, response

# Keeping state is the provider's: a translated provider has none to offer.
STATEFUL = ("previous_response_id", "conversation", "background")


def _text_of(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for j, part in enumerate(content):
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])
            else:
                raise bad_request("only text parts are supported here", f"{param}[{j}]")
        return "".join(out)
    raise bad_request("must be a string or a list of text parts", param)


def _parts(content: Any, param: str) -> str | list[Json]:
    """A message's content (string or input parts) as chat content."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request("'content' must be a string or a list of parts", param)
    parts: list[Json] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        where = f"{param}[{j}]"
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append({"type": "text", "text": part["refusal"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image: Json = {"url": part["image_url"]}
            if isinstance(part.get("detail"), str):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise bad_request(
                f"content part type {kind!r} cannot be translated for this model's provider", where
            )
    return parts


def _messages(payload: Json) -> list[Json]:
    messages: list[Json] = []
    instructions = payload.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    items = payload.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        return messages
    for i, item in enumerate(items or []):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise bad_request("each input item must be an object", param)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise bad_request("'role' must be user, assistant, system or developer", f"{param}.role")
            content = _parts(item.get("content"), f"{param}.content")
            if role != "user" and not isinstance(content, str):
                # Only user turns carry images; the others are plain text in chat.
                if any(p["type"] != "text" for p in content):
                    raise bad_request(f"{role} content can only be text", f"{param}.content")
                content = "".join(p["text"] for p in content)
            messages.append({"role": role, "content": content})
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise bad_request("a function_call needs call_id and name", param)
            arguments = item.get("arguments")
            call = {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": arguments if isinstance(arguments, str) else "{}"},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":  # the calls of that same turn
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str):
                raise bad_request("a function_call_output needs call_id", f"{param}.call_id")
            output = item.get("output")
            text = output if isinstance(output, str) else _text_of(output, f"{param}.output")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
        else:
            raise bad_request(
                f"input item type {kind!r} cannot be translated for this model's provider", param
            )
    if not messages:
        raise bad_request("'input' is empty", "input")
    return messages


def _tools(tools: Any) -> list[Json]:
    out = []
    for i, tool in enumerate(tools):
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(tool.get("name"), str)
        ):
            raise bad_request(
                "only function tools (type 'function' with a name) translate for this model's provider",
                f"tools[{i}]",
            )
        fn: Json = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object"}}
        if isinstance(tool.get("description"), str):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise bad_request("tool_choice must be auto, none, required or a function", "tool_choice")


def _format(text: Any) -> Json | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise bad_request("unsupported text.format type", "text.format.type")


class ResponsesFront:
    def to_chat(self, payload: Json, provider_type: str) -> Json:
        for name in STATEFUL:
            if payload.get(name):
                raise bad_request(
                    f"'{name}' needs a provider that keeps response state (openai, openai-compatible, "
                    "azure-openai); this model's provider does not",
                    name,
                )
        chat: Json = {"model": payload["model"], "messages": _messages(payload)}
        if payload.get("max_output_tokens") is not None:
            chat["max_tokens"] = payload["max_output_tokens"]
        for name in ("temperature", "top_p", "user", "parallel_tool_calls", "stream"):
            if payload.get(name) is not None:
                chat[name] = payload[name]
        if payload.get("tools"):
            chat["tools"] = _tools(payload["tools"])
            if payload.get("tool_choice") is not None:
                chat["tool_choice"] = _tool_choice(payload["tool_choice"])
        fmt = _format(payload.get("text"))
        if fmt is not None:
            chat["response_format"] = fmt
        return chat

    def from_chat(self, data: Json) -> bytes:
        choice = (data.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        output: list[Json] = []
        if message.get("content") or not message.get("tool_calls"):
            output.append(message_item(new_id("msg"), str(message.get("content") or ""), "completed"))
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            output.append(
                call_item(
                    new_id("fc"), str(call.get("id")), str(fn.get("name")), str(fn.get("arguments") or "")
                )
            )
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        u = Usage(
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
            int(details.get("cached_tokens") or 0),
        )
        body = response(new_id("resp"), str(data.get("model", "")), output, choice.get("finish_reason"), u)
        return orjson.dumps(body)

    def stream(self, inner: StreamTranslator) -> StreamTranslator:
        return ResponsesStream(inner)


FRONT = ResponsesFront()
