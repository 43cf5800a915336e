"""The adapter interface every provider type implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ..config import Provider
from ..errors import APIError

Json = dict[str, Any]
KINDS = ("chat", "completions", "embeddings")


@dataclass(slots=True)
class Usage:
    prompt: int = 0
    completion: int = 0
    cached: int = 0


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


class StreamTranslator:
    """Turns upstream SSE events into the OpenAI SSE bytes sent to the client, and
    collects usage on the way. The default passes OpenAI events through."""

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.usage = Usage()
        self.done = False

    def feed(self, event: str | None, data: bytes, raw: bytes) -> bytes:
        if data == b"[DONE]":
            self.done = True
            return raw
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return raw
        if isinstance(chunk, dict) and isinstance(chunk.get("usage"), dict):
            self.usage = usage_from_openai(chunk)
            if not self.include_usage:
                if not chunk.get("choices"):
                    return b""  # the usage-only chunk we asked for on the client's behalf
                chunk["usage"] = None
                return b"data: " + orjson.dumps(chunk) + b"\n\n"
        return raw


class Adapter:
    """Builds upstream requests for one provider and reads its answers."""

    local = False  # the mock answers in-process

    def __init__(self, provider: Provider, api_key: str | None) -> None:
        self.provider = provider
        self.api_key = api_key
        self.name = provider.name
        self.base_url = (provider.base_url or "").rstrip("/")

    def supports(self, kind: str) -> bool:
        return kind in KINDS

    def request(
        self, kind: str, payload: Json, upstream_model: str, stream: bool
    ) -> tuple[str, dict[str, str], bytes]:
        """URL, headers and body for the upstream call."""
        raise NotImplementedError

    def response(self, kind: str, body: bytes) -> tuple[bytes, Usage]:
        """The OpenAI-shaped body for the client, and the usage it reports."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise APIError(502, f"upstream {self.name} sent invalid JSON") from exc
        return body, usage_from_openai(data)

    def translator(self, kind: str, include_usage: bool, public_model: str) -> StreamTranslator:
        return StreamTranslator(include_usage)

    def error_body(self, status: int, body: bytes) -> bytes:
        """An upstream error body in OpenAI's shape."""
        return body
