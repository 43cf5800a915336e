"""What a front door (``/v1/responses``, ``/v1/messages``) provides to be served by a
provider that only speaks chat completions: the request and answer translations, and a
stream translator fed with the chat chunks the provider's own translator writes."""

from __future__ import annotations

from typing import Protocol

import orjson

from .providers import StreamTranslator, Usage
from .providers.base import Json
from .sse import SSEParser


class Front(Protocol):
    """One front-door API, as translations to and from chat completions."""

    def to_chat(self, payload: Json, provider_type: str) -> Json: ...

    def from_chat(self, data: Json) -> bytes: ...

    def stream(self, inner: StreamTranslator) -> StreamTranslator: ...


class ChatChunks(StreamTranslator):
    """Reads the chat chunks the provider's own translator writes and hands each to
    ``chunk``; ``finish`` at ``[DONE]``, ``error`` for an error event."""

    def __init__(self, inner: StreamTranslator) -> None:
        super().__init__(True)
        self.inner = inner
        self._parser = SSEParser()

    def feed(self, event: str | None, data: bytes, raw: bytes) -> bytes:
        out = self.inner.feed(event, data, raw)
        self.usage = self.inner.usage
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

    def chunk(self, chunk: Json) -> bytes:
        raise NotImplementedError

    def finish(self, usage: Usage) -> bytes:
        raise NotImplementedError

    def error(self, error: Json) -> bytes:
        raise NotImplementedError
