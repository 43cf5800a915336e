"""``openai`` and ``openai-compatible`` (pass-through) and ``azure-openai``."""

from __future__ import annotations

import orjson

from .base import Adapter, Json

_PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}


def _body(payload: Json, upstream_model: str, stream: bool) -> bytes:
    body = dict(payload)
    body["model"] = upstream_model
    if stream:
        # Ask for usage so it can be recorded; the translator hides it from clients
        # that did not ask for it themselves.
        options = body.get("stream_options")
        options = dict(options) if isinstance(options, dict) else {}
        options["include_usage"] = True
        body["stream_options"] = options
    return orjson.dumps(body)


class OpenAIAdapter(Adapter):
    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def url(self, kind: str, upstream_model: str) -> str:
        return self.base_url + _PATHS[kind]

    def body(self, kind: str, payload: Json, upstream_model: str, stream: bool) -> bytes:
        return _body(payload, upstream_model, stream)


class AzureAdapter(Adapter):
    """Azure OpenAI: the upstream model is the deployment name, and every URL carries
    the api-version."""

    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.api_key} if self.api_key else {}

    def url(self, kind: str, upstream_model: str) -> str:
        return (
            f"{self.base_url}/openai/deployments/{upstream_model}{_PATHS[kind]}"
            f"?api-version={self.provider.api_version}"
        )

    def body(self, kind: str, payload: Json, upstream_model: str, stream: bool) -> bytes:
        return _body(payload, upstream_model, stream)
