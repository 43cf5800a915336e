"""``openai`` and ``openai-compatible`` (pass-through) and ``azure-openai``."""

from __future__ import annotations

import httpx
import orjson

from .base import KINDS, Adapter, Json, StreamTranslator, Usage
from .passthrough import ResponsesPassStream, responses_usage

_PATHS = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
    "responses": "/responses",
}


def _body(payload: Json, upstream_model: str, stream: bool, kind: str = "chat") -> bytes:
    body = dict(payload)
    body["model"] = upstream_model
    if stream and kind != "responses":  # a Responses stream always ends with its usage
        # Ask for usage so it can be recorded; the translator hides it from clients
        # that did not ask for it themselves.
        options = body.get("stream_options")
        options = dict(options) if isinstance(options, dict) else {}
        options["include_usage"] = True
        body["stream_options"] = options
    return orjson.dumps(body)


class ResponsesPassThrough(Adapter):
    """The Responses API (``/responses``) passed through: these providers keep the
    response state that ``previous_response_id`` and ``GET /responses/{id}`` need."""

    def supports(self, kind: str) -> bool:
        return kind in KINDS or kind == "responses"

    def response(self, kind: str, body: bytes) -> tuple[bytes, Usage]:
        if kind != "responses":
            return super().response(kind, body)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise self.garbage("invalid JSON") from None
        return body, responses_usage(data)

    def translator(self, kind: str, include_usage: bool, public_model: str) -> StreamTranslator:
        if kind == "responses":
            return ResponsesPassStream(include_usage)
        return super().translator(kind, include_usage, public_model)

    def retrieve_url(self, path: str) -> str:
        """The URL of ``/responses/{path}``."""
        raise NotImplementedError

    async def stored(self, method: str, path: str, query: bytes) -> httpx.Response:
        """A request about a stored response (``GET``/``DELETE /responses/{id}``,
        ``GET /responses/{id}/input_items``, ``POST /responses/{id}/cancel``); body read."""
        url = self.retrieve_url(path)
        if query:
            url += ("&" if "?" in url else "?") + query.decode("latin-1")
        request = httpx.Request(method, url, headers=self.auth_headers(), extensions=self._extensions)
        return await self._clients.get(self.name).send(request)


class OpenAIAdapter(ResponsesPassThrough):
    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def url(self, kind: str, upstream_model: str) -> str:
        return self.base_url + _PATHS[kind]

    def body(self, kind: str, payload: Json, upstream_model: str, stream: bool) -> bytes:
        return _body(payload, upstream_model, stream, kind)

    def retrieve_url(self, path: str) -> str:
        return f"{self.base_url}/responses/{path}"


class AzureAdapter(ResponsesPassThrough):
    """Azure OpenAI: the upstream model is the deployment name, and every URL carries
    the api-version."""

    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.api_key} if self.api_key else {}

    def url(self, kind: str, upstream_model: str) -> str:
        if kind == "responses":  # not per deployment: the deployment is the body's model
            return f"{self.base_url}/openai/responses?api-version={self.provider.api_version}"
        return (
            f"{self.base_url}/openai/deployments/{upstream_model}{_PATHS[kind]}"
            f"?api-version={self.provider.api_version}"
        )

    def body(self, kind: str, payload: Json, upstream_model: str, stream: bool) -> bytes:
        return _body(payload, upstream_model, stream, kind)

    def retrieve_url(self, path: str) -> str:
        return f"{self.base_url}/openai/responses/{path}?api-version={self.provider.api_version}"
