"""What a front door (``/v1/responses``, ``/v1/messages``) provides to be served by a
provider that only speaks chat completions: the request and answer translations, and a
stream translator fed with the chat chunks the provider's own translator writes."""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from ..notes import NOTES as NOTES
from ..notes import Notes as Notes
from ..notes import notes as notes
from ..providers import StreamTranslator, Usage
from ..providers.base import Json
from ..sse import SSEParser


class Front(Protocol):
    """One front-door API, as translations to and from chat completions."""

    def to_chat(self, payload: Json, provider_type: str, notes: Notes | None = None) -> Json: ...

    def from_chat(self, data: Json) -> bytes: ...

    def stream(self, inner: StreamTranslator) -> StreamTranslator: ...


class ChatChunks(StreamTranslator):
    """Reads the chat chunks the provider's own translator writes: the first one calls
    ``_start`` (through ``begin``), the first choice's text and tool-call deltas go to ``_text`` and ``_tool``
    and its finish reason is kept; ``finish`` at ``[DONE]``, ``error`` for an error event."""

    def __init__(self, inner: StreamTranslator) -> None:
        super().__init__(True)
        self.inner = inner
        self._parser = SSEParser()
        self.started = False
        self.finish_reason: Any = None
        self.stop_match: str | None = None  # the stop sequence that ended it, when the server says
        self.refused = False

    def feed(self, event: str | None, data: bytes, raw: bytes) -> bytes:
        out = self.inner.feed(event, data, raw)
        inner = self.inner
        self.usage, self.chars, self.failed = inner.usage, inner.chars, inner.failed
        if not out or self.done:
            return b""
        parts: list[bytes] = []
        for ev in self._parser.feed(out):
            if ev.data == b"[DONE]":
                parts.append(self.finish(self.inner.usage))
                self.done = True
                break
            chunk = orjson.loads(ev.data)
            if not isinstance(chunk, dict):
                continue
            if isinstance(chunk.get("error"), dict):
                parts.append(self.error(chunk["error"]))
                self.done = True
                break
            parts.append(self.chunk(chunk))
        return b"".join(parts)

    def begin(self, model: str) -> bytes:
        """The stream's opening events, once: before the first chunk, or before the end or
        an error when no chunk came."""
        if self.started:
            return b""
        self.started = True
        return self._start(model)

    def chunk(self, chunk: Json) -> bytes:
        out = [self.begin(str(chunk.get("model") or ""))]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                out.append(self._text(text))
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                self.refused = True
                out.append(self._text(refusal))
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict):
                    out.append(self._tool(call))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            if isinstance(choice.get("stop_reason"), str):  # vLLM, SGLang: the matched stop string
                self.stop_match = choice["stop_reason"]
        return b"".join(out)

    def _start(self, model: str) -> bytes:
        raise NotImplementedError

    def _text(self, text: str) -> bytes:
        raise NotImplementedError

    def _tool(self, call: Json) -> bytes:
        raise NotImplementedError

    def finish(self, usage: Usage) -> bytes:
        raise NotImplementedError

    def error(self, error: Json) -> bytes:
        raise NotImplementedError
