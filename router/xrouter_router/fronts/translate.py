"""Serving the router's other front doors (``/v1/responses``, ``/v1/messages``) from a
provider that only speaks chat completions: the request is translated to a chat
completion, sent through the provider's own adapter, and its answer (a body or a
stream of chunks) translated back. Providers that speak the API natively get it
passed through instead (``adapter_for``)."""

from __future__ import annotations

import httpx
import orjson

from ..errors import UpstreamFailure
from ..providers import Adapter, StreamTranslator, Usage
from ..providers.base import Json
from . import messages, responses
from .base import Front, notes

FRONT_KINDS = ("responses", "messages")


class Translated(Adapter):
    """A chat-completions adapter seen through a front door. Only the translations
    are its own; addressing, credentials and the client are the inner adapter's, so
    it does not run ``Adapter.__init__``."""

    def __init__(self, inner: Adapter, kind: str, front: Front) -> None:
        self.inner = inner
        self.kind = kind
        self.front = front
        self.provider = inner.provider
        self.name = inner.name
        self.api_key = None

    def supports(self, kind: str) -> bool:
        return kind == self.kind and self.inner.supports("chat")

    async def open(self, kind: str, payload: Json, upstream_model: str, stream: bool) -> httpx.Response:
        n = notes()
        n.reset()
        chat = self.front.to_chat(payload, str(self.provider.type.value), n)
        # A token per four bytes of what the model reads: the stream's opening usage
        # (message_start) must say something before the upstream's count arrives.
        n.prompt_estimate = max(1, len(orjson.dumps([chat["messages"], chat.get("tools")])) // 4)
        return await self.inner.open("chat", chat, upstream_model, stream)

    def response(self, kind: str, body: bytes) -> tuple[bytes, Usage]:
        out, usage = self.inner.response("chat", body)
        try:
            data = orjson.loads(out)
            if not isinstance(data, dict):
                raise TypeError
            return self.front.from_chat(data), usage
        except (orjson.JSONDecodeError, AttributeError, TypeError, KeyError, IndexError):
            raise self.garbage("an unexpected answer") from None

    def translator(self, kind: str, include_usage: bool, public_model: str) -> StreamTranslator:
        return self.front.stream(self.inner.translator("chat", True, public_model))

    def error_body(self, status: int, body: bytes) -> bytes:
        return self.inner.error_body(status, body)

    def garbage(self, what: str) -> UpstreamFailure:
        return self.inner.garbage(what)


_FRONTS: dict[str, Front] = {"responses": responses.FRONT, "messages": messages.FRONT}


def adapter_for(adapter: Adapter, kind: str, upstream_model: str = "") -> Adapter:
    """The adapter that serves ``kind`` on this provider: itself when it speaks it
    for this model (or for the chat-family kinds), else a translation through chat
    completions."""
    if (
        kind not in FRONT_KINDS
        or not adapter.supports("chat")
        or (adapter.supports(kind) and adapter.speaks(kind, upstream_model))
    ):
        # Its own API (a chat request's drops are the provider translation's, noted
        # again on each attempt): an earlier target's notes no longer apply.
        notes().reset()
        return adapter
    return Translated(adapter, kind, _FRONTS[kind])
