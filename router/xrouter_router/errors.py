"""OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import orjson

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "internal_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class APIError(Exception):
    """An error the router answers with, in OpenAI's JSON error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.retry_after = retry_after

    def body(self) -> bytes:
        return error_body(self.status, self.message, param=self.param, code=self.code)

    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(b"content-type", b"application/json")]
        if self.retry_after is not None:
            headers.append((b"retry-after", str(max(1, int(self.retry_after + 0.999))).encode()))
        return headers


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": _TYPES.get(status, "api_error"),
                "param": param,
                "code": code,
            }
        }
    )


def anthropic_body(message: str, kind: str = "api_error") -> bytes:
    """Anthropic's error shape, for answers the router writes itself on ``/v1/messages``
    before any endpoint could shape them (an unexpected 500, an unknown method)."""
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def error_for(path: str, status: int, message: str, code: str | None = None) -> bytes:
    """The error body in the shape of the front door that ``path`` belongs to."""
    if path.startswith("/v1/messages"):
        kind = "api_error" if status >= 500 else _ANTHROPIC_4XX.get(status, "invalid_request_error")
        return anthropic_body(message, kind)
    return error_body(status, message, code=code)


_ANTHROPIC_4XX = {401: "authentication_error", 403: "permission_error", 404: "not_found_error"}


def bad_request(message: str, param: str | None = None) -> APIError:
    return APIError(400, message, param=param, code="invalid_request")


class UpstreamFailure(Exception):
    """An attempt failed in a way that allows trying again (or elsewhere).

    ``breaker``: the failure counts against the target's circuit breaker.
    ``retry``: the same target may be tried again (False: go straight to the next
    target, e.g. when the provider refused the router's own credential)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        breaker: bool,
        retry: bool = True,
        retry_after: float | None = None,
        code: str = "upstream_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.breaker = breaker
        self.retry = retry
        self.retry_after = retry_after
        self.code = code


class UpstreamRefusal(Exception):
    """The upstream refused the request itself (4xx other than 401/403/408/409/429):
    passed to the client, never retried. ``context_window``: it says the prompt is too
    long for the model, so the route's ``contextWindowFallbacks`` may still answer."""

    def __init__(self, status: int, body: bytes, context_window: bool = False) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.context_window = context_window
