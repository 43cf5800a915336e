"""``gemini`` (the Gemini API, with an API key) and ``vertex`` (Vertex AI, with an
OAuth token: Gemini models through ``generateContent``, Anthropic models through
``rawPredict``). The translations are ``gemini.py``'s and ``anthropic.py``'s; the
tokens are ``google_auth.py``'s."""

from __future__ import annotations

from contextvars import ContextVar

import httpx
import orjson

from ..clients import Clients
from ..config import Provider
from ..errors import bad_request, error_body
from ..notes import notes
from ..secrets import read_secret
from .anthropic import MESSAGES_FIELDS, AnthropicStream, from_anthropic, to_anthropic
from .base import Adapter, Json, StreamTranslator, Usage
from .chatfields import account
from .gemini import GeminiStream, from_gemini, to_gemini
from .google_auth import metadata_server, service_account
from .passthrough import ANTHROPIC_BETA, MessagesPassStream, anthropic_usage
from .structured import response_format

VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
# The upstream model of the request being answered (``response`` is not told it; a
# request's attempt runs ``open`` and ``response`` in the same task).
_MODEL: ContextVar[str] = ContextVar("google_model", default="")


def google_error(status: int, body: bytes) -> bytes:
    """``{"error": {"code", "message", "status"}}`` (or a list of them) in OpenAI's shape."""
    try:
        data = orjson.loads(body)
        err = (data[0] if isinstance(data, list) else data)["error"]
        message = f"{err.get('status', 'ERROR')}: {err.get('message', 'upstream error')}"
    except (orjson.JSONDecodeError, KeyError, TypeError, IndexError, AttributeError):
        message = "upstream error"
    return error_body(status, message)


class GeminiAdapter(Adapter):
    """The Gemini API: chat completions translated to ``generateContent``."""

    def supports(self, kind: str) -> bool:
        return kind == "chat"

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.api_key} if self.api_key else {}

    def url(self, kind: str, upstream_model: str, stream: bool = False) -> str:
        base = self.base_url or "https://generativelanguage.googleapis.com"
        if not base.endswith(("/v1beta", "/v1")):
            base += "/v1beta"
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{base}/models/{upstream_model}:{action}"

    def body(self, kind: str, payload: Json, upstream_model: str, stream: bool) -> bytes:
        return orjson.dumps(to_gemini(payload))

    async def open(self, kind: str, payload: Json, upstream_model: str, stream: bool) -> httpx.Response:
        content = self.body(kind, payload, upstream_model, stream)
        headers = [*self._headers, (b"content-length", str(len(content)).encode())]
        return await self._send(self.url(kind, upstream_model, stream), headers, content, upstream_model)

    async def _send(
        self, url: str, headers: list[tuple[bytes, bytes]], content: bytes, model: str
    ) -> httpx.Response:
        request = httpx.Request(
            "POST", url, headers=headers, stream=httpx.ByteStream(content), extensions=self._extensions
        )
        request.read()
        _MODEL.set(model)
        return await self._clients.get(self.name).send(request, stream=True)

    def response(self, kind: str, body: bytes) -> tuple[bytes, Usage]:
        data = self.json_object(body)
        try:
            out, usage = from_gemini(data, _MODEL.get())
        except (KeyError, TypeError, IndexError, AttributeError):
            raise self.garbage("an unexpected answer") from None
        return orjson.dumps(out), usage

    def translator(self, kind: str, include_usage: bool, public_model: str) -> StreamTranslator:
        return GeminiStream(include_usage, public_model)

    def error_body(self, status: int, body: bytes) -> bytes:
        return google_error(status, body)


def is_claude(model: str) -> bool:
    return model.startswith("claude")


class VertexAdapter(GeminiAdapter):
    """Vertex AI. Gemini models as the Gemini API; Claude models (``claude-…@date``)
    get chat completions translated to the Messages API and ``/v1/messages`` passed
    through, both with ``anthropic_version: vertex-2023-10-16``."""

    def __init__(self, provider: Provider, api_key: str | None, clients: Clients) -> None:
        super().__init__(provider, api_key, clients)
        assert provider.region is not None and provider.project is not None  # the config requires them
        host = (
            "aiplatform.googleapis.com"
            if provider.region == "global"
            else f"{provider.region}-aiplatform.googleapis.com"
        )
        self.base_url = (provider.base_url or f"https://{host}").rstrip("/")
        self.prefix = f"/v1/projects/{provider.project}/locations/{provider.region}/publishers"

        def http() -> httpx.AsyncClient:
            return clients.get(provider.name + ".credentials")

        if provider.google_credentials is not None:
            what = f"providers[{provider.name}].googleCredentials"
            self.tokens = service_account(read_secret(provider.google_credentials, what), what, http)
        else:
            self.tokens = metadata_server(http)

    def supports(self, kind: str) -> bool:
        return kind in ("chat", "messages")

    def speaks(self, kind: str, upstream_model: str) -> bool:
        # Messages natively for Claude; Gemini gets it through generateContent.
        return kind != "messages" or is_claude(upstream_model)

    def url(self, kind: str, upstream_model: str, stream: bool = False) -> str:
        if is_claude(upstream_model):
            action = "streamRawPredict" if stream else "rawPredict"
            return f"{self.base_url}{self.prefix}/anthropic/models/{upstream_model}:{action}"
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{self.base_url}{self.prefix}/google/models/{upstream_model}:{action}"

    def body(self, kind: str, payload: Json, upstream_model: str, stream: bool) -> bytes:
        if not is_claude(upstream_model):
            if kind == "messages":
                raise bad_request(
                    f"/v1/messages reaches only Claude models on Vertex AI, not {upstream_model!r}: "
                    "use /v1/chat/completions for this model",
                    "model",
                )
            return orjson.dumps(to_gemini(payload))
        if kind != "messages" and response_format(payload) is not None:
            # Claude on Vertex: no structured outputs documented for rawPredict.
            notes().drop("response_format")
        if kind == "messages":
            body = dict(payload)
        else:
            body = to_anthropic(payload, upstream_model, stream)
            account(payload, MESSAGES_FIELDS)
        body.pop("model", None)
        body["anthropic_version"] = VERTEX_ANTHROPIC_VERSION
        if stream:
            body["stream"] = True
        return orjson.dumps(body)

    async def open(self, kind: str, payload: Json, upstream_model: str, stream: bool) -> httpx.Response:
        content = self.body(kind, payload, upstream_model, stream)
        token = await self.tokens.get()
        headers = [
            (b"content-type", b"application/json"),
            (b"accept-encoding", b"identity"),
            (b"authorization", f"Bearer {token.value}".encode("latin-1")),
            (b"content-length", str(len(content)).encode()),
        ]
        beta = ANTHROPIC_BETA.get() if kind == "messages" else None
        if beta is not None:
            headers.append((b"anthropic-beta", beta))
        return await self._send(self.url(kind, upstream_model, stream), headers, content, upstream_model)

    def response(self, kind: str, body: bytes) -> tuple[bytes, Usage]:
        if not is_claude(_MODEL.get()):
            return super().response(kind, body)
        data = self.json_object(body)
        if kind == "messages":
            return body, anthropic_usage(data.get("usage"))
        try:
            out, usage = from_anthropic(data, str(data.get("model") or _MODEL.get()))
        except (AttributeError, TypeError, ValueError):
            raise self.garbage("an unexpected answer") from None
        return orjson.dumps(out), usage

    def translator(self, kind: str, include_usage: bool, public_model: str) -> StreamTranslator:
        if not is_claude(_MODEL.get()):
            return GeminiStream(include_usage, public_model)
        if kind == "messages":
            return MessagesPassStream(include_usage)
        return AnthropicStream(include_usage, public_model)

    def error_body(self, status: int, body: bytes) -> bytes:
        if is_claude(_MODEL.get()):
            try:
                err = orjson.loads(body)["error"]
                return error_body(status, str(err.get("message", "upstream error")))
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                pass
        return google_error(status, body)
