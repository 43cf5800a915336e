"""Recognising an upstream refusal that means "the prompt does not fit this model's
context window", whatever the provider calls it, so the failover loop can move the
request to the route's ``contextWindowFallbacks`` instead of passing the 400 on."""

from __future__ import annotations

from typing import Any

import orjson

# OpenAI and Azure OpenAI name the error with this code; OpenAI-compatible servers
# (vLLM, llama.cpp's server) often leave the code out and only say it in the message.
_CODE = "context_length_exceeded"
_MESSAGES = (
    "maximum context length",  # OpenAI, Azure, vLLM
    "prompt is too long",  # Anthropic (type invalid_request_error)
    "exceed context limit",  # Anthropic: input length and max_tokens exceed context limit
    "exceeds the context window",  # OpenAI, newer wording
    "context length exceeded",
    "context_length_exceeded",
)


def is_context_window_error(status: int, body: bytes) -> bool:
    """True when an upstream 400 says the prompt is longer than the model accepts."""
    if status != 400 or not body:
        return False
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(data, dict):
        return False
    err = data.get("error")
    if not isinstance(err, dict):
        return False
    for field in ("code", "type"):
        if err.get(field) == _CODE:
            return True
    inner = err.get("innererror")  # Azure sometimes nests the detail
    if isinstance(inner, dict) and inner.get("code") == _CODE:
        return True
    message = err.get("message")
    if not isinstance(message, str):
        return False
    lowered = message.lower()
    return any(m in lowered for m in _MESSAGES)
