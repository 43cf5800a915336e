"""The adapter interface every provider type implements: how to call the upstream
(``open``) and how to read its answers (``response``, ``translator``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from .. import sse
from ..clients import Clients
from ..config import Provider
from ..errors import UpstreamFailure

Json = dict[str, Any]
KINDS = ("chat", "completions", "embeddings")


@dataclass(slots=True)
class Usage:
    prompt: int = 0  # every input token: fresh, cache reads and cache writes
    completion: int = 0
    cached: int = 0  # read from the provider's prompt cache
    cache_write: int = 0  # written to it (Anthropic), priced apart
    cache_write_1h: int = 0  # of those, written for an hour (a dearer rate)


def usage_from_openai(data: Any) -> Usage:
    if not isinstance(data, dict):
        return Usage()
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    return Usage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")), _int(cached))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _delta_chars(delta: Any) -> int:
    if not isinstance(delta, dict):
        return 0
    n = 0
    for field in ("content", "reasoning_content", "refusal"):
        text = delta.get(field)
        if isinstance(text, str):
            n += len(text)
    for call in delta.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
            n += len(fn["arguments"])
    return n


class StreamTranslator:
    """Turns upstream SSE events into the OpenAI SSE bytes sent to the client, and
    collects usage on the way. The default passes OpenAI events through."""

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.usage = Usage()
        self.done = False
        # The stream ended with the upstream's own error event (a failure, not a 200).
        self.failed = False
        # Characters of answer text streamed so far: the completion estimate when the
        # stream ends before the upstream's usage arrives (``meter.py``).
        self.chars = 0

    def feed(self, event: str | None, data: bytes, raw: bytes) -> bytes:
        if data == b"[DONE]":
            self.done = True
            return raw
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return raw
        if not isinstance(chunk, dict):
            return raw
        if isinstance(chunk.get("error"), dict):
            self.failed = True
        choices = chunk.get("choices")
        if choices and isinstance(choices[0], dict):
            self.chars += _delta_chars(choices[0].get("delta"))
        if isinstance(chunk.get("usage"), dict):
            self.usage = usage_from_openai(chunk)
            if not self.include_usage:
                if not chunk.get("choices"):
                    return b""  # the usage-only chunk we asked for on the client's behalf
                chunk["usage"] = None
                return sse.encode(orjson.dumps(chunk))
        return raw


def usage_json(usage: Usage) -> Json:
    """``usage`` of an OpenAI chat completion."""
    return {
        "prompt_tokens": usage.prompt,
        "completion_tokens": usage.completion,
        "total_tokens": usage.prompt + usage.completion,
        "prompt_tokens_details": {"cached_tokens": usage.cached},
    }


class ChunkWriter(StreamTranslator):
    """A translator that writes OpenAI ``chat.completion.chunk`` events of its own."""

    def __init__(self, include_usage: bool, public_model: str, chunk_id: str = "") -> None:
        super().__init__(include_usage)
        self.id = chunk_id
        self.model = public_model
        self.created = int(time.time())

    def _event(self, choices: list[Json], usage: Json | None = None) -> bytes:
        chunk: Json = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        return sse.encode(orjson.dumps(chunk))

    def _chunk(self, delta: Json, finish: str | None = None) -> bytes:
        return self._event([{"index": 0, "delta": delta, "finish_reason": finish}])

    def _tool_start(self, n: int, call_id: Any, name: Any) -> bytes:
        call = {"index": n, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        return self._chunk({"tool_calls": [call]})

    def _tool_args(self, n: int, arguments: Any) -> bytes:
        return self._chunk({"tool_calls": [{"index": n, "function": {"arguments": arguments}}]})

    def _end(self) -> bytes:
        """The stream's end: the usage chunk if the client asked for it, and ``[DONE]``."""
        self.done = True
        tail = self._event([], usage_json(self.usage)) if self.include_usage else b""
        return tail + sse.DONE


class Adapter:
    """Calls one provider and reads its answers. Subclasses say how to address it
    (``url``, ``auth_headers``, ``body``); ``open`` is the same for every HTTP
    provider, and a local provider (the mock) overrides it."""

    def __init__(self, provider: Provider, api_key: str | None, clients: Clients) -> None:
        self.provider = provider
        self.api_key = api_key
        self.name = provider.name
        self.base_url = (provider.base_url or "").rstrip("/")
        self._clients = clients
        t = provider.timeouts
        # The transport enforces connect (and waiting for a pooled connection); the
        # first byte, the silences in a stream and the total are enforced by the
        # attempt's own clock (upstream.py), so no socket read timeout here.
        self._extensions: dict[str, Any] = {
            "timeout": {"connect": t.connect, "read": None, "write": None, "pool": t.connect}
        }
        # Built once, already encoded: they never change per request (the credential
        # is in them); only content-length is added per request.
        static = {"content-type": "application/json", "accept-encoding": "identity", **self.auth_headers()}
        self._headers = [(k.encode("ascii"), v.encode("latin-1")) for k, v in static.items()]
        self._urls: dict[tuple[str, str], httpx.URL] = {}

    def supports(self, kind: str) -> bool:
        return kind in KINDS

    def speaks(self, kind: str, upstream_model: str) -> bool:
        """Whether this model takes ``kind`` natively (else it is translated through
        chat completions). Only providers that host several APIs say no."""
        return True

    def auth_headers(self) -> dict[str, str]:
        return {}

    def url(self, kind: str, upstream_model: str) -> str:
        raise NotImplementedError

    def body(self, kind: str, payload: Json, upstream_model: str, stream: bool) -> bytes:
        raise NotImplementedError

    async def open(self, kind: str, payload: Json, upstream_model: str, stream: bool) -> httpx.Response:
        """Send the request; the response with its body not yet read. Raises
        ``APIError`` (400) when the request cannot be expressed for this provider."""
        content = self.body(kind, payload, upstream_model, stream)
        url = self._urls.get((kind, upstream_model))
        if url is None:
            if len(self._urls) > 1000:
                self._urls.clear()
            url = self._urls[(kind, upstream_model)] = httpx.URL(self.url(kind, upstream_model))
        # stream= rather than content=: the headers are complete here, so httpx need not
        # re-derive and re-normalise them (content-length, host) on every request.
        request = httpx.Request("POST", url, stream=httpx.ByteStream(content), extensions=self._extensions)
        # Set after construction: Request() would copy them, and then work out their
        # encoding again when the transport reads them; they are ASCII, by construction.
        request.headers = httpx.Headers(
            [*self._headers, (b"content-length", str(len(content)).encode())], encoding="ascii"
        )
        request.read()  # in memory already: lets the transport send it as one body
        return await self._clients.get(self.name).send(request, stream=True)

    def response(self, kind: str, body: bytes) -> tuple[bytes, Usage]:
        """The OpenAI-shaped body for the client, and the usage it reports."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise self.garbage("invalid JSON") from None
        return body, usage_from_openai(data)

    def translator(self, kind: str, include_usage: bool, public_model: str) -> StreamTranslator:
        return StreamTranslator(include_usage)

    def json_object(self, body: bytes) -> Json:
        """A 200 body that must be a JSON object; anything else is ``garbage``."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise self.garbage("invalid JSON") from None
        if not isinstance(data, dict):
            raise self.garbage("an unexpected answer")
        return data

    def error_body(self, status: int, body: bytes) -> bytes:
        """An upstream error body in OpenAI's shape."""
        return body

    def garbage(self, what: str) -> UpstreamFailure:
        """The upstream answered 200 with something unreadable: a failed attempt,
        retried and failed over like a 5xx."""
        return UpstreamFailure(502, f"upstream {self.name} sent {what}", breaker=True)
