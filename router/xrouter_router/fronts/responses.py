"""The Responses API (``POST /v1/responses``) for providers that only speak chat
completions (``anthropic``, ``mock``): the request as a chat completion, the chat
answer as a ``response`` object, and chat chunks as Responses stream events.
docs/router.md ("Responses API") lists what translates."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from ..errors import bad_request
from ..providers import StreamTranslator, Usage
from ..providers.base import Json
from .base import Notes, notes
from .responses_stream import ResponsesStream, call_item, message_item, new_id, response

# Keeping state is the provider's: a translated provider has none to offer.
STATEFUL = ("previous_response_id", "conversation", "background")
# The request fields translated below (or harmless to leave: ``store`` false, nothing
# is kept anyway); any other is dropped with notice.
_TRANSLATED = frozenset(
    {"model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "user"}
    | {"parallel_tool_calls", "stream", "tools", "tool_choice", "text", "metadata", *STATEFUL}
)
# Input items that only the provider that wrote them can read back: dropped with notice.
_DROPPED_ITEMS = frozenset({"reasoning", "web_search_call", "file_search_call", "compaction"})
# A chat function name: OpenAI's pattern and length (Anthropic's is the same or wider).
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def flat_name(namespace: str, name: str) -> str:
    """A namespace tool's function as one chat function name: ``<namespace>__<name>``,
    or, when that is not a valid name, a readable prefix and a digest of the pair (the
    same pair always gives the same name, so a conversation's calls keep matching)."""
    flat = f"{namespace}__{name}"
    if _NAME.fullmatch(flat):
        return flat
    digest = hashlib.sha256(flat.encode()).hexdigest()[:12]
    return re.sub(r"[^A-Za-z0-9_-]", "_", flat)[:51] + "_" + digest


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


def _messages(payload: Json, notes: Notes) -> list[Json]:
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
            if isinstance(item.get("namespace"), str):
                name = flat_name(item["namespace"], name)
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
        elif kind in _DROPPED_ITEMS:
            notes.drop(f"input.{kind}")
        else:
            raise bad_request(
                f"input item type {kind!r} cannot be translated for this model's provider", param
            )
    if not messages:
        raise bad_request("'input' is empty", "input")
    return messages


def _function(tool: Any, param: str, name: str | None = None) -> Json:
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        raise bad_request("a function tool needs a name", param)
    fn: Json = {"name": name or tool["name"], "parameters": tool.get("parameters") or {"type": "object"}}
    if isinstance(tool.get("description"), str):
        fn["description"] = tool["description"]
    return {"type": "function", "function": fn}


def _tools(tools: Any, notes: Notes) -> list[Json]:
    """Function tools as chat functions; a namespace's functions flattened to
    ``<namespace>__<name>`` (mapped back in the answer). Hosted tools (web search,
    file search, code interpreter, ...), custom (free-form) tools and deferred ones
    (``defer_loading``, for a tool search) cannot run on the other side: dropped with
    notice."""
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "namespace" and isinstance(tool.get("name"), str):
            for j, inner in enumerate(tool.get("tools") or ()):
                where = f"tools[{i}].tools[{j}]"
                if not isinstance(inner, dict) or inner.get("type", "function") != "function":
                    notes.drop(
                        f"tools.{tool['name']}.{inner.get('type') if isinstance(inner, dict) else '?'}"
                    )
                    continue
                if inner.get("defer_loading"):
                    notes.drop(f"tools.defer_loading({tool['name']}.{inner.get('name')})")
                    continue
                flat = flat_name(tool["name"], str(inner.get("name")))
                notes.names[flat] = (tool["name"], str(inner.get("name")))
                out.append(_function(inner, where, flat))
        elif kind == "function":
            if tool.get("defer_loading"):
                notes.drop(f"tools.defer_loading({tool.get('name')})")
                continue
            out.append(_function(tool, f"tools[{i}]"))
        elif isinstance(kind, str):
            notes.drop(f"tools.{kind}")
        else:
            raise bad_request("each tool must be an object with a 'type'", f"tools[{i}]")
    return out


def _tool_choice(choice: Any, tools: list[Json]) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        if choice["name"] not in {t["function"]["name"] for t in tools}:
            raise bad_request(
                f"tool_choice names {choice['name']!r}, a tool this model's provider cannot run",
                "tool_choice.name",
            )
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


def named(name: str) -> tuple[str | None, str]:
    """A chat function name as the Responses call names it: (namespace, name)."""
    pair = notes().names.get(name)
    return pair if pair is not None else (None, name)


class ResponsesFront:
    def to_chat(self, payload: Json, provider_type: str, notes: Notes | None = None) -> Json:
        notes = notes if notes is not None else Notes()
        for name in STATEFUL:
            if payload.get(name):
                raise bad_request(
                    f"'{name}' needs a provider that keeps response state (openai, openai-compatible, "
                    "azure-openai); this model's provider does not",
                    name,
                )
        chat: Json = {"model": payload["model"], "messages": _messages(payload, notes)}
        if payload.get("max_output_tokens") is not None:
            chat["max_tokens"] = payload["max_output_tokens"]
        for name in ("temperature", "top_p", "user", "parallel_tool_calls", "stream"):
            if payload.get(name) is not None:
                chat[name] = payload[name]
        tools = _tools(payload.get("tools") or (), notes)
        if tools:
            chat["tools"] = tools
            if payload.get("tool_choice") is not None:
                chat["tool_choice"] = _tool_choice(payload["tool_choice"], tools)
        else:
            chat.pop("parallel_tool_calls", None)
            if isinstance(payload.get("tool_choice"), dict):
                _tool_choice(payload["tool_choice"], tools)  # names a tool that is gone: refused
        fmt = _format(payload.get("text"))
        if fmt is not None:
            chat["response_format"] = fmt
            notes.origin["response_format"] = "text.format"  # what a provider's drop names
        for name in payload:
            if name == "store" and not payload["store"]:
                continue
            if name not in _TRANSLATED and payload[name] is not None:
                notes.drop(name)
        return chat

    def from_chat(self, data: Json) -> bytes:
        choice = (data.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        output: list[Json] = []
        if message.get("content") or not message.get("tool_calls"):
            output.append(message_item(new_id("msg"), str(message.get("content") or ""), "completed"))
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            namespace, name = named(str(fn.get("name")))
            output.append(
                call_item(new_id("fc"), str(call.get("id")), name, str(fn.get("arguments") or ""), namespace)
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
