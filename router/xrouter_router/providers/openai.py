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
    _headers: dict[str, str] | None = None  # built once: they never change per request

    def request(
        self, kind: str, payload: Json, upstream_model: str, stream: bool
    ) -> tuple[str, dict[str, str], bytes]:
        headers = self._headers
        if headers is None:
            headers = {"content-type": "application/json", "accept-encoding": "identity"}
            if self.api_key:
                headers["authorization"] = f"Bearer {self.api_key}"
            self._headers = headers
        return self.base_url + _PATHS[kind], headers, _body(payload, upstream_model, stream)


class AzureAdapter(Adapter):
    """Azure OpenAI: the upstream model is the deployment name, and every URL carries
    the api-version."""

    def request(
        self, kind: str, payload: Json, upstream_model: str, stream: bool
    ) -> tuple[str, dict[str, str], bytes]:
        headers = {"content-type": "application/json", "accept-encoding": "identity"}
        if self.api_key:
            headers["api-key"] = self.api_key
        url = (
            f"{self.base_url}/openai/deployments/{upstream_model}{_PATHS[kind]}"
            f"?api-version={self.provider.api_version}"
        )
        return url, headers, _body(payload, upstream_model, stream)
