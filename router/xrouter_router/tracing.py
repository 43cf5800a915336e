"""What one request's trace needs, collected while it runs: its upstream attempts and
what the answer said (model, finish reasons, optionally its text). Plain Python, no
OpenTelemetry objects: a ``Trace`` exists only when telemetry is on, and the spans
are built from it once the client has its answer (``telemetry.py``)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from .asgi import Message, Send
from .sse import SSEParser

# The Responses stream events that end a response (and carry its outcome).
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


@dataclass(slots=True)
class AttemptRecord:
    provider: str
    provider_type: str
    upstream_model: str
    began: float  # perf_counter
    ended: float
    error: str | None  # the exception's type name; None when the attempt answered
    status: int


@dataclass(slots=True)
class Trace:
    capture_content: bool = False
    kind: str = "chat"  # the endpoint: its answers' shape
    attempts: list[AttemptRecord] = field(default_factory=list)
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)  # only with captureContent
    _status: int = 0
    _stream: bool = False
    _parser: SSEParser | None = None

    def observe(self, send: Send) -> Send:
        """``send``, reading the answer on its way to the client."""

        async def observed(message: Message) -> None:
            with contextlib.suppress(Exception):  # a trace detail never fails an answer
                self._read(message)
            await send(message)

        return observed

    def _read(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._status = message["status"]
            headers = dict(message.get("headers", ()))
            self._stream = headers.get(b"content-type", b"").startswith(b"text/event-stream")
            if self._stream:
                self._parser = SSEParser()
            return
        if self._status != 200:
            return
        body = message.get("body", b"")
        if self._parser is None:
            self._chunk(orjson.loads(body), False)
            return
        for ev in self._parser.feed(body):
            if ev.data and ev.data != b"[DONE]":
                self._chunk(orjson.loads(ev.data), True)

    def _chunk(self, data: Any, delta: bool) -> None:
        if not isinstance(data, dict):
            return
        if self.kind == "responses":
            self._response_event(data, delta)
            return
        if self.kind == "messages":
            self._message_event(data, delta)
            return
        if isinstance(data.get("model"), str):
            self.response_model = data["model"]
        if isinstance(data.get("id"), str):
            self.response_id = data["id"]
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                self.finish_reasons.append(reason)
            if self.capture_content:
                part = choice.get("delta" if delta else "message") or {}
                text = part.get("content") if isinstance(part, dict) else None
                if not isinstance(text, str):
                    text = choice.get("text")  # /v1/completions
                if isinstance(text, str):
                    index = choice.get("index", 0)
                    index = index if isinstance(index, int) and 0 <= index < 128 else 0
                    while len(self.output) <= index:
                        self.output.append("")
                    self.output[index] += text

    def _text(self, text: Any) -> None:
        if self.capture_content and isinstance(text, str):
            if not self.output:
                self.output.append("")
            self.output[0] += text

    def _response_event(self, data: dict[str, Any], delta: bool) -> None:
        """A Responses API ``response`` object, or one of its stream events."""
        if delta:
            kind = data.get("type")
            if kind == "response.output_text.delta":
                self._text(data.get("delta"))
                return
            response = data.get("response")
            if not isinstance(response, dict):
                return
            # Every lifecycle event carries the response; only the last one its outcome.
            self._response_head(response, kind in _FINAL_EVENTS)
            return
        self._response_head(data, True)
        for item in data.get("output") or ():
            if isinstance(item, dict) and item.get("type") == "message":
                for part in item.get("content") or ():
                    if isinstance(part, dict) and part.get("type") == "output_text":
                        self._text(part.get("text"))

    def _response_head(self, response: dict[str, Any], final: bool) -> None:
        if isinstance(response.get("model"), str):
            self.response_model = response["model"]
        if isinstance(response.get("id"), str):
            self.response_id = response["id"]
        status = response.get("status")
        if final and isinstance(status, str):
            details = response.get("incomplete_details")
            reason = details.get("reason") if isinstance(details, dict) else None
            self.finish_reasons.append(reason if isinstance(reason, str) else status)

    def _message_event(self, data: dict[str, Any], delta: bool) -> None:
        """An Anthropic Messages ``message``, or one of its stream events."""
        kind = data.get("type")
        if kind == "message_start" and isinstance(data.get("message"), dict):
            data = data["message"]
            kind = "message"
        if kind == "message":
            if isinstance(data.get("model"), str):
                self.response_model = data["model"]
            if isinstance(data.get("id"), str):
                self.response_id = data["id"]
            if not delta:
                for block in data.get("content") or ():
                    if isinstance(block, dict) and block.get("type") == "text":
                        self._text(block.get("text"))
        elif kind == "content_block_delta" and isinstance(data.get("delta"), dict):
            if data["delta"].get("type") == "text_delta":
                self._text(data["delta"].get("text"))
            return
        elif kind == "message_delta" and isinstance(data.get("delta"), dict):
            data = data["delta"]
        else:
            return
        reason = data.get("stop_reason")
        if isinstance(reason, str):
            self.finish_reasons.append(reason)


def now() -> float:
    return time.perf_counter()
