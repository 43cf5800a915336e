"""``bedrock``: Amazon Bedrock Runtime. Chat completions are translated to Converse
and ConverseStream (``converse.py``); ``/v1/messages`` passes through to Anthropic
models with InvokeModel and InvokeModelWithResponseStream. Requests are signed with
SigV4 (``sigv4.py``, credentials from ``awscreds.py``), or carry a Bedrock API key as
a bearer token when ``apiKey`` is set. Streams arrive in AWS's binary event-stream
framing (``eventstream.py``) and are re-framed here as SSE events for the translators."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from urllib.parse import quote

import httpx
import orjson

from ..clients import Clients
from ..config import Provider
from ..errors import UpstreamFailure, bad_request, error_body
from .awscreds import credential_source
from .base import Adapter, Json, StreamTranslator, Usage
from .converse import ConverseStream, from_converse, to_converse
from .eventstream import EventStreamDecoder, EventStreamError, Message
from .passthrough import ANTHROPIC_BETA, MessagesPassStream, anthropic_usage
from .sigv4 import sign

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
# Exceptions a stream may carry instead of its first event: the same failures as the
# HTTP statuses of these names, so they are retried and failed over like those.
_STREAM_STATUS = {
    "throttlingException": 429,
    "serviceUnavailableException": 503,
    "internalServerException": 500,
    "modelStreamErrorException": 502,
    "modelTimeoutException": 504,
}
# The upstream model of the request being answered (``response`` is not told it; a
# request's attempt runs ``open`` and ``response`` in the same task).
_PCHAR = ":@!$&'()*+,;="  # RFC 3986 pchar besides the unreserved: legal in a path segment
_MODEL: ContextVar[str] = ContextVar("bedrock_model", default="")


def _sse(event: str, data: bytes) -> bytes:
    if b"\n" in data:  # one data line per event; compact JSON has no newline
        data = orjson.dumps(orjson.loads(data))
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def converse_event(msg: Message) -> bytes:
    if msg.kind == "event":
        return _sse(msg.name, msg.payload)
    return _sse("exception", orjson.dumps({"type": msg.name, "message": _message(msg.payload)}))


def invoke_event(msg: Message) -> bytes:
    """An InvokeModelWithResponseStream ``chunk`` carries one Anthropic event, base64-encoded."""
    if msg.kind == "event":
        if msg.name != "chunk":
            return b""
        data = base64.b64decode(orjson.loads(msg.payload)["bytes"])
        event = orjson.loads(data).get("type", "")
        return _sse(str(event), data)
    err = {"type": "error", "error": {"type": "api_error", "message": f"{msg.name}: {_message(msg.payload)}"}}
    return _sse("error", orjson.dumps(err))


def _message(payload: bytes) -> str:
    try:
        data = orjson.loads(payload)
        return str(data.get("message") or data.get("Message") or "upstream error")
    except (orjson.JSONDecodeError, AttributeError):
        return "upstream error"


class Reframed(httpx.AsyncByteStream):
    """The response's event stream, decoded and re-framed as SSE. An exception before
    any event is an ``UpstreamFailure`` with its HTTP equivalent, so it is retried or
    failed over; a corrupt frame is a broken stream."""

    def __init__(self, inner: httpx.AsyncByteStream, convert: Callable[[Message], bytes], name: str) -> None:
        self.inner = inner
        self.convert = convert
        self.name = name

    async def __aiter__(self) -> AsyncIterator[bytes]:
        decoder = EventStreamDecoder()
        started = False
        async for chunk in self.inner:
            try:
                messages = decoder.feed(chunk)
            except EventStreamError as exc:
                raise httpx.RemoteProtocolError(f"upstream {self.name}: {exc}") from None
            for msg in messages:
                if not started and msg.kind != "event":
                    status = _STREAM_STATUS.get(msg.name, 502)
                    raise UpstreamFailure(
                        status if status != 500 else 502,
                        f"upstream {self.name} answered {msg.name}",
                        breaker=status != 429,
                    )
                started = True
            out = b"".join(self.convert(m) for m in messages)
            if out:
                yield out

    async def aclose(self) -> None:
        await self.inner.aclose()


def is_anthropic(model: str) -> bool:
    """Anthropic models, by id, inference profile id (``us.anthropic...``) or ARN."""
    return "anthropic." in model


class BedrockAdapter(Adapter):
    def __init__(self, provider: Provider, api_key: str | None, clients: Clients) -> None:
        super().__init__(provider, api_key, clients)
        assert provider.region is not None  # the config requires it
        self.region = provider.region
        self.base_url = (provider.base_url or f"https://bedrock-runtime.{self.region}.amazonaws.com").rstrip(
            "/"
        )
        # Its own client: the credential endpoints are other hosts than the upstream.
        self.creds = credential_source(
            provider.name, provider.aws, self.region, lambda: clients.get(provider.name + ".credentials")
        )

    def supports(self, kind: str) -> bool:
        return kind in ("chat", "messages")

    def speaks(self, kind: str, upstream_model: str) -> bool:
        # Messages natively for Anthropic models; the others get it through Converse.
        return kind != "messages" or is_anthropic(upstream_model)

    def url(self, kind: str, upstream_model: str, stream: bool = False) -> str:
        if kind == "messages":
            action = "invoke-with-response-stream" if stream else "invoke"
        else:
            action = "converse-stream" if stream else "converse"
        # A path segment in the form the transport (yarl) sends unchanged: what is signed
        # must be what goes on the wire. An ARN's "/" is encoded; its ":" is not.
        return f"{self.base_url}/model/{quote(upstream_model, safe=_PCHAR)}/{action}"

    def body(self, kind: str, payload: Json, upstream_model: str, stream: bool) -> bytes:
        if kind == "messages":
            if not is_anthropic(upstream_model):
                raise bad_request(
                    f"/v1/messages reaches only Anthropic models on Bedrock, not {upstream_model!r}: "
                    "use /v1/chat/completions for this model",
                    "model",
                )
            body = {k: v for k, v in payload.items() if k not in ("model", "stream")}
            body["anthropic_version"] = BEDROCK_ANTHROPIC_VERSION
            beta = ANTHROPIC_BETA.get()
            if beta is not None:  # Bedrock takes the beta features in the body
                body["anthropic_beta"] = [b.strip() for b in beta.decode().split(",")]
            return orjson.dumps(body)
        return orjson.dumps(to_converse(payload))

    async def open(self, kind: str, payload: Json, upstream_model: str, stream: bool) -> httpx.Response:
        content = self.body(kind, payload, upstream_model, stream)
        url = httpx.URL(self.url(kind, upstream_model, stream))
        headers = {
            "host": url.netloc.decode("ascii"),
            "content-type": "application/json",
            "accept": "application/vnd.amazon.eventstream" if stream else "application/json",
        }
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        else:
            headers.update(
                sign("POST", url, headers, content, await self.creds.get(), self.region, "bedrock")
            )
        headers["accept-encoding"] = "identity"
        request = httpx.Request("POST", url, headers=headers, content=content, extensions=self._extensions)
        _MODEL.set(upstream_model)
        resp = await self._clients.get(self.name).send(request, stream=True)
        if stream and resp.status_code == 200:
            convert = invoke_event if kind == "messages" else converse_event
            resp.stream = Reframed(resp.stream, convert, self.name)  # type: ignore[arg-type]
        return resp

    def response(self, kind: str, body: bytes) -> tuple[bytes, Usage]:
        data = self.json_object(body)
        if kind == "messages":
            return body, anthropic_usage(data.get("usage"))
        try:
            out, usage = from_converse(data, _MODEL.get())
        except (KeyError, TypeError, AttributeError):
            raise self.garbage("an unexpected answer") from None
        return orjson.dumps(out), usage

    def translator(self, kind: str, include_usage: bool, public_model: str) -> StreamTranslator:
        if kind == "messages":
            return MessagesPassStream(include_usage)
        return ConverseStream(include_usage, public_model)

    def error_body(self, status: int, body: bytes) -> bytes:
        return error_body(status, _message(body))
