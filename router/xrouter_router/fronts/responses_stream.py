"""Responses API stream events, written from chat completion chunks (for the
providers served by translation), and the ``response`` object's parts they share
with the non-streaming answer."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from ..providers import StreamTranslator, Usage
from ..providers.base import Json
from .base import ChatChunks, notes

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def message_item(item_id: str, text: str, status: str) -> Json:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def call_item(
    item_id: str, call_id: str, name: str, arguments: str, namespace: str | None, status: str = "completed"
) -> Json:
    item = {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }
    if namespace is not None:  # a namespace tool's function, flattened on the way in
        item["namespace"] = namespace
    return item


def usage_json(u: Usage) -> Json:
    return {
        "input_tokens": u.prompt,
        "input_tokens_details": {"cached_tokens": u.cached},
        "output_tokens": u.completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.prompt + u.completion,
    }


def response(rid: str, model: str, output: list[Json], finish: Any, usage: Usage | None) -> Json:
    reason = _INCOMPLETE.get(finish) if isinstance(finish, str) else None
    status = "in_progress" if usage is None else ("incomplete" if reason else "completed")
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": {"reason": reason} if reason else None,
        "usage": usage_json(usage) if usage is not None else None,
    }


class ResponsesStream(ChatChunks):
    """Chat chunks → ``response.created``, ``response.output_item.added``,
    ``response.output_text.delta``, ``response.function_call_arguments.delta``, ...,
    ``response.completed`` (or ``response.incomplete``)."""

    def __init__(self, inner: StreamTranslator) -> None:
        super().__init__(inner)
        self.rid = new_id("resp")
        self.model = ""
        self.seq = 0
        self.output: list[Json] = []
        self.current: Json | None = None  # the output item being written
        self.calls: dict[int, Json] = {}  # chat tool-call index → its output item
        self.names: dict[str, tuple[str | None, str]] = dict(notes().names)  # flattened → (namespace, name)

    def _ev(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _start(self, model: str) -> bytes:
        self.model = model
        resp = response(self.rid, model, [], None, None)
        return self._ev("response.created", response=resp) + self._ev("response.in_progress", response=resp)

    def _open(self, item: Json) -> bytes:
        out = self._close()
        self.current = item
        self.output.append(item)
        added = {**item, "status": "in_progress"}
        if item["type"] == "message":
            added["content"] = []
        else:
            added["arguments"] = ""
        return out + self._ev("response.output_item.added", output_index=len(self.output) - 1, item=added)

    def _text(self, text: str) -> bytes:
        out = b""
        item = self.current
        if item is None or item["type"] != "message":
            item = message_item(new_id("msg"), "", "in_progress")
            out = self._open(item)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out += self._ev(
                "response.content_part.added",
                item_id=item["id"],
                output_index=len(self.output) - 1,
                content_index=0,
                part=part,
            )
        item["content"][0]["text"] += text
        return out + self._ev(
            "response.output_text.delta",
            item_id=item["id"],
            output_index=self.output.index(item),
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _tool(self, call: Json) -> bytes:
        out = b""
        n = call.get("index", 0)
        fn = call.get("function") or {}
        item = self.calls.get(n)
        if item is None:
            namespace, name = self.names.get(str(fn.get("name") or ""), (None, str(fn.get("name") or "")))
            item = call_item(new_id("fc"), str(call.get("id") or ""), name, "", namespace, "in_progress")
            self.calls[n] = item
            out = self._open(item)
        piece = fn.get("arguments")
        if isinstance(piece, str) and piece:
            item["arguments"] += piece
            out += self._ev(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=self.output.index(item),
                delta=piece,
            )
        return out

    def _close(self) -> bytes:
        item, self.current = self.current, None
        if item is None:
            return b""
        index = self.output.index(item)
        item["status"] = "completed"
        if item["type"] == "message":
            part = item["content"][0]
            out = self._ev(
                "response.output_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=part["text"],
                logprobs=[],
            )
            out += self._ev(
                "response.content_part.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=part,
            )
        else:
            out = self._ev(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            )
        return out + self._ev("response.output_item.done", output_index=index, item=item)

    def finish(self, usage: Usage) -> bytes:
        out = self.begin("")
        out += self._close()
        resp = response(self.rid, self.model, self.output, self.finish_reason, usage)
        kind = "response.incomplete" if resp["status"] == "incomplete" else "response.completed"
        return out + self._ev(kind, response=resp)

    def error(self, error: Json) -> bytes:
        out = self.begin("")
        message = str(error.get("message") or "upstream error")
        code = str(error.get("code") or error.get("type") or "upstream_error")
        out += self._ev("error", code=code, message=message, param=None)
        resp = response(self.rid, self.model, self.output, None, self.inner.usage)
        resp["status"], resp["error"] = "failed", {"code": code, "message": message}
        return out + self._ev("response.failed", response=resp)
