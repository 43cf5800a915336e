"""A scripted LLM upstream on loopback for the agent-client tests: it speaks the
Anthropic Messages API, chat completions and the Responses API (plain and SSE, shapes
from the published references), records every request, and drives one tool loop.

The script: a request whose tool list holds the wanted tool (by name, or by a name
ending in ``__<name>`` or ``.<name>`` as a flattened namespace tool is called) and no
tool result yet is answered with a call of that tool; a request carrying a tool
result is answered ``AGENT-DONE: <the result, on one line>``; anything else (the
clients' side requests: titles, summaries, quota checks) gets ``ok``."""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from typing import Any

from .servers import LoopbackHTTP

Json = dict[str, Any]
DONE = "AGENT-DONE"
# Every answer's usage, in each API's shape: 120 prompt tokens, 12 completion tokens.
MESSAGES_USAGE = {"input_tokens": 120, "output_tokens": 12, "cache_read_input_tokens": 0}
RESPONSES_USAGE = {
    "input_tokens": 120,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 12,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 132,
}
# Never recorded: they carry the client's credential.
SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key"})


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    out = []
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict):
            if isinstance(part.get("text"), str):
                out.append(part["text"])
            elif "content" in part:
                out.append(_text_of(part["content"]))
            elif isinstance(part.get("output"), str):
                out.append(part["output"])
    return "\n".join(out)


def _one_line(text: str) -> str:
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())[:300] or "(empty)"


class AgentUpstream(LoopbackHTTP):
    """``tool`` is the tool to call, ``arguments`` its input."""

    def __init__(self, tool: str, arguments: Json) -> None:
        self.tool = tool
        self.arguments = arguments
        self.requests: list[Json] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # model lists, update checks: nothing here
                self._send(404, json.dumps({"error": {"message": "not here"}}).encode())

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_raw": raw.decode("latin-1")}
                path = self.path.split("?", 1)[0]
                headers = {k.lower(): v for k, v in self.headers.items() if k.lower() not in SECRET_HEADERS}
                with outer.lock:
                    outer.requests.append({"path": path, "headers": headers, "body": body})
                if path.endswith("/messages/count_tokens"):
                    self._send(200, json.dumps({"input_tokens": 42}).encode())
                elif path.endswith("/messages"):
                    self._answer(body, outer.messages(body))
                elif path.endswith("/chat/completions"):
                    self._answer(body, outer.chat(body))
                elif path.endswith("/responses"):
                    self._answer(body, outer.responses(body))
                else:
                    self._send(404, json.dumps({"error": {"message": f"no {path}"}}).encode())

            def _answer(self, body: Json, answer: tuple[Json, list[bytes]]) -> None:
                whole, events = answer
                if not body.get("stream"):
                    self._send(200, json.dumps(whole).encode())
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                self.close_connection = True
                for ev in events:
                    self.wfile.write(ev)
                    self.wfile.flush()

            def _send(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        LoopbackHTTP.__init__(self, Handler)

    def decide(self, tool_names: list[str], result: str | None) -> tuple[str, str | None]:
        """(text, tool name to call or None)."""
        if result is not None:
            return f"{DONE}: {_one_line(result)}", None
        for name in tool_names:
            if name == self.tool or name.endswith(("__" + self.tool, "." + self.tool)):
                return "", name
        return "ok", None

    # --- Anthropic Messages -------------------------------------------------------
    def messages(self, body: Json) -> tuple[Json, list[bytes]]:
        names = [t.get("name", "") for t in body.get("tools") or [] if isinstance(t, dict)]
        result = None
        last = (body.get("messages") or [{}])[-1]
        for block in last.get("content") if isinstance(last.get("content"), list) else ():
            if isinstance(block, dict) and block.get("type") == "tool_result":
                result = _text_of(block.get("content"))
        text, call = self.decide(names, result)
        content: list[Json] = [{"type": "text", "text": text}] if text else []
        if call:
            content.append(
                {
                    "type": "tool_use",
                    "id": "toolu_" + uuid.uuid4().hex[:20],
                    "name": call,
                    "input": self.arguments,
                }
            )
        usage = MESSAGES_USAGE
        msg = {
            "id": "msg_" + uuid.uuid4().hex[:20],
            "type": "message",
            "role": "assistant",
            "model": body.get("model", ""),
            "content": content,
            "stop_reason": "tool_use" if call else "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }

        def ev(kind: str, data: Json) -> bytes:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

        start = {**msg, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
        events = [ev("message_start", {"message": start})]
        for i, block in enumerate(content):
            if block["type"] == "text":
                events.append(
                    ev("content_block_start", {"index": i, "content_block": {"type": "text", "text": ""}})
                )
                delta = {"type": "text_delta", "text": block["text"]}
            else:
                events.append(
                    ev("content_block_start", {"index": i, "content_block": {**block, "input": {}}})
                )
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            events.append(ev("content_block_delta", {"index": i, "delta": delta}))
            events.append(ev("content_block_stop", {"index": i}))
        events.append(
            ev(
                "message_delta",
                {
                    "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
                    "usage": {"output_tokens": 12},
                },
            )
        )
        events.append(ev("message_stop", {}))
        return msg, events

    # --- chat completions ---------------------------------------------------------
    def chat(self, body: Json) -> tuple[Json, list[bytes]]:
        names = [
            (t.get("function") or {}).get("name", "") for t in body.get("tools") or [] if isinstance(t, dict)
        ]
        last = (body.get("messages") or [{}])[-1]
        result = _text_of(last.get("content")) if last.get("role") == "tool" else None
        text, call = self.decide(names, result)
        cid, now, model = "chatcmpl-" + uuid.uuid4().hex[:20], int(time.time()), body.get("model", "")
        message: Json = {"role": "assistant", "content": text or None}
        tool_call = None
        if call:
            tool_call = {
                "id": "call_" + uuid.uuid4().hex[:20],
                "type": "function",
                "function": {"name": call, "arguments": json.dumps(self.arguments)},
            }
            message["tool_calls"] = [tool_call]
        finish = "tool_calls" if call else "stop"
        usage = {"prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132}
        whole = {
            "id": cid,
            "object": "chat.completion",
            "created": now,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }

        def chunk(delta: Json, finish_reason: str | None = None, **extra: Any) -> bytes:
            data = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": now,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                **extra,
            }
            return b"data: " + json.dumps(data).encode() + b"\n\n"

        events = [chunk({"role": "assistant", "content": ""})]
        if text:
            events.append(chunk({"content": text}))
        if tool_call:
            args = tool_call["function"]["arguments"]
            first = {**tool_call, "index": 0, "function": {"name": call, "arguments": ""}}
            events.append(chunk({"tool_calls": [first]}))
            events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": args}}]}))
        events.append(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            tail = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": now,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            events.append(b"data: " + json.dumps(tail).encode() + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return whole, events

    # --- Responses API --------------------------------------------------------------
    def responses(self, body: Json) -> tuple[Json, list[bytes]]:
        names = []
        for t in body.get("tools") or []:
            if isinstance(t, dict) and t.get("type") == "namespace":
                names += [
                    f"{t.get('name')}.{s.get('name')}" for s in t.get("tools") or [] if isinstance(s, dict)
                ]
            elif isinstance(t, dict):
                names.append(str(t.get("name", "")))
        items = body.get("input")
        last = items[-1] if isinstance(items, list) and items else {}
        result = None
        if isinstance(last, dict) and last.get("type") == "function_call_output":
            result = (
                _text_of(last.get("output")) if not isinstance(last.get("output"), str) else last["output"]
            )
        text, call = self.decide(names, result)
        rid, model = "resp_" + uuid.uuid4().hex[:20], body.get("model", "")
        output: list[Json] = []
        if text:
            part = {"type": "output_text", "text": text, "annotations": []}
            output.append(
                {
                    "type": "message",
                    "id": "msg_" + uuid.uuid4().hex[:20],
                    "status": "completed",
                    "role": "assistant",
                    "content": [part],
                }
            )
        if call:
            output.append(
                {
                    "type": "function_call",
                    "id": "fc_" + uuid.uuid4().hex[:20],
                    "call_id": "call_" + uuid.uuid4().hex[:20],
                    "name": call,
                    "arguments": json.dumps(self.arguments),
                    "status": "completed",
                }
            )
        usage = RESPONSES_USAGE
        done = {
            "id": rid,
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": model,
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "error": None,
            "incomplete_details": None,
            "usage": usage,
        }
        seq = iter(range(1000))

        def ev(kind: str, **data: Any) -> bytes:
            payload = {"type": kind, "sequence_number": next(seq), **data}
            return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()

        started = {**done, "status": "in_progress", "output": [], "usage": None}
        events = [ev("response.created", response=started), ev("response.in_progress", response=started)]
        for i, item in enumerate(output):
            if item["type"] == "message":
                events.append(
                    ev(
                        "response.output_item.added",
                        output_index=i,
                        item={**item, "status": "in_progress", "content": []},
                    )
                )
                part = item["content"][0]
                events.append(
                    ev(
                        "response.content_part.added",
                        item_id=item["id"],
                        output_index=i,
                        content_index=0,
                        part={**part, "text": ""},
                    )
                )
                events.append(
                    ev(
                        "response.output_text.delta",
                        item_id=item["id"],
                        output_index=i,
                        content_index=0,
                        delta=part["text"],
                    )
                )
                events.append(
                    ev(
                        "response.output_text.done",
                        item_id=item["id"],
                        output_index=i,
                        content_index=0,
                        text=part["text"],
                    )
                )
                events.append(
                    ev(
                        "response.content_part.done",
                        item_id=item["id"],
                        output_index=i,
                        content_index=0,
                        part=part,
                    )
                )
            else:
                events.append(
                    ev(
                        "response.output_item.added",
                        output_index=i,
                        item={**item, "status": "in_progress", "arguments": ""},
                    )
                )
                events.append(
                    ev(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=i,
                        delta=item["arguments"],
                    )
                )
                events.append(
                    ev(
                        "response.function_call_arguments.done",
                        item_id=item["id"],
                        output_index=i,
                        arguments=item["arguments"],
                    )
                )
            events.append(ev("response.output_item.done", output_index=i, item=item))
        events.append(ev("response.completed", response=done))
        return done, events
