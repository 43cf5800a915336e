"""Reading the native answers the router passes through untouched: the Responses API
(``openai``, ``openai-compatible``, ``azure-openai``) and the Anthropic Messages API
(``anthropic``). The bytes go to the client as they came; only the usage is read, and
the stream is watched for its terminal event."""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Any

import orjson

from .base import Json, StreamTranslator, Usage

# The client's ``anthropic-beta`` header on ``/v1/messages``, for the pass-through to
# an Anthropic provider (the features it names change what the API accepts). Set per
# request by the endpoint; a context variable, as the request's task runs it all.
ANTHROPIC_BETA: ContextVar[bytes | None] = ContextVar("anthropic_beta", default=None)
# Likewise the client's ``anthropic-version`` (the router's own, 2023-06-01, otherwise).
CLIENT_VERSION: ContextVar[bytes | None] = ContextVar("anthropic_version", default=None)
_BETA = re.compile(rb"[A-Za-z0-9._-]+(\s*,\s*[A-Za-z0-9._-]+)*")
_VERSION = re.compile(rb"\d{4}-\d{2}-\d{2}")


def beta_header(value: bytes | None) -> bytes | None:
    """The header's value if it is a plain list of feature names, else None."""
    if value is None or len(value) > 1000 or not _BETA.fullmatch(value.strip()):
        return None
    return value.strip()


def version_header(value: bytes | None) -> bytes | None:
    """The header's value if it is a date-shaped API version, else None."""
    if value is None or not _VERSION.fullmatch(value.strip()):
        return None
    return value.strip()


# The events that end a Responses stream (it has no ``[DONE]``); the last two say it failed.
_RESPONSES_END = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})
_RESPONSES_FAILED = frozenset({"response.failed", "error"})
# The events whose ``delta`` is answer text: the completion estimate of a cut stream.
_RESPONSES_DELTAS = frozenset(
    {"response.output_text.delta", "response.refusal.delta", "response.function_call_arguments.delta"}
)


def _n(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def responses_usage(data: Any) -> Usage:
    """``usage`` of a Responses API ``response`` object."""
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    return Usage(_n(usage.get("input_tokens")), _n(usage.get("output_tokens")), _n(cached))


def anthropic_usage(usage: Any) -> Usage:
    """An Anthropic ``usage`` object; the prompt counts cache reads and writes too,
    and the writes are kept apart (``cache_creation`` splits them by lifetime) as
    Anthropic prices them above the plain input rate."""
    if not isinstance(usage, dict):
        return Usage()
    read = _n(usage.get("cache_read_input_tokens"))
    write = _n(usage.get("cache_creation_input_tokens"))
    split = usage.get("cache_creation")
    hour = min(write, _n(split.get("ephemeral_1h_input_tokens"))) if isinstance(split, dict) else 0
    prompt = _n(usage.get("input_tokens")) + read + write
    return Usage(prompt, _n(usage.get("output_tokens")), read, write, hour)


def _json(data: bytes) -> Json | None:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class ResponsesPassStream(StreamTranslator):
    """A Responses API stream, passed through; usage from its final ``response``."""

    def feed(self, event: str | None, data: bytes, raw: bytes) -> bytes:
        if data == b"[DONE]":
            self.done = True
            return raw
        kind = event
        if kind is None or kind in _RESPONSES_END:
            ev = _json(data)
            kind = ev.get("type") if ev is not None else kind
            if kind in _RESPONSES_END:
                self.done = True
                self.failed = kind in _RESPONSES_FAILED
                if ev is not None:
                    self.usage = responses_usage(ev.get("response"))
        elif kind in _RESPONSES_DELTAS:
            ev = _json(data)
            text = ev.get("delta") if ev is not None else None
            self.chars += len(text) if isinstance(text, str) else 0
        return raw


class MessagesPassStream(StreamTranslator):
    """An Anthropic Messages stream, passed through; usage from ``message_start``
    (the prompt) and ``message_delta`` (the output so far)."""

    def feed(self, event: str | None, data: bytes, raw: bytes) -> bytes:
        if event in _MESSAGES_READ or event is None:
            ev = _json(data)
            kind = ev.get("type") if ev is not None else None
            if ev is None:
                pass
            elif kind == "content_block_delta":
                delta = ev.get("delta")
                if isinstance(delta, dict):
                    text = delta.get("text", delta.get("partial_json", delta.get("thinking")))
                    self.chars += len(text) if isinstance(text, str) else 0
            elif kind == "message_start":
                msg = ev.get("message")
                self.usage = anthropic_usage(msg.get("usage") if isinstance(msg, dict) else None)
            elif kind == "message_delta":
                usage = ev.get("usage")
                if isinstance(usage, dict):
                    if "output_tokens" in usage:
                        self.usage.completion = _n(usage.get("output_tokens"))
                    if "input_tokens" in usage:  # newer streams restate the prompt here
                        later = anthropic_usage(usage)
                        later.completion = self.usage.completion
                        self.usage = later
            elif kind in ("message_stop", "error"):
                self.done = True
                self.failed = kind == "error"
        return raw


_MESSAGES_READ = frozenset({"message_start", "content_block_delta", "message_delta", "message_stop", "error"})
