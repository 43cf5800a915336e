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


def now() -> float:
    return time.perf_counter()
