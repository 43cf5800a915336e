"""Small ASGI helpers for the hot path (no Request/Response objects, no extra tasks)
and the top-level boundary every HTTP request passes through."""

from __future__ import annotations

import contextlib
import logging
import os
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from .errors import APIError, error_for

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The scope key under which Boundary leaves the request's id for the endpoints.
REQUEST_ID = "xrouter.request_id"
log = logging.getLogger("xrouter.app")


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body; 413 as soon as it is known to exceed ``limit``."""
    length = header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise APIError(413, f"request body exceeds {limit} bytes", code="body_too_large")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise APIError(499, "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"request body exceeds {limit} bytes", code="body_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def respond(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    content_type: bytes = b"application/json",
) -> None:
    raw = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        raw.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def respond_json(
    send: Send, status: int, data: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await respond(send, status, orjson.dumps(data), headers)


class Boundary:
    """Pure ASGI middleware: gives every HTTP request an id (``x-request-id`` on the
    response, ``scope[REQUEST_ID]`` for the endpoints) and turns anything unexpected
    into a 500 carrying that id, in the shape of the request's front door (Anthropic's
    on ``/v1/messages``, OpenAI's elsewhere). The log line names the exception's
    type and where it was raised, never its message or locals, which may hold a
    credential or a prompt."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = os.urandom(16).hex()  # uuid4().hex's format, without building a UUID
        scope[REQUEST_ID] = rid
        rid_header = (b"x-request-id", rid.encode())
        progress = [False, False]  # response started, response complete

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                progress[0] = True
                message["headers"] = [*message.get("headers", ()), rid_header]
            elif not message.get("more_body", False):
                progress[1] = True
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            where = [
                f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}"
                for f in traceback.extract_tb(exc.__traceback__)
            ]
            fields = {
                "msg": "unexpected error",
                "request_id": rid,
                "error": type(exc).__name__,
                "where": where[-8:],
            }
            log.error("unexpected error", extra={"fields": fields})
            if not progress[0]:
                message = f"internal error (request id {rid})"
                body = error_for(str(scope.get("path", "")), 500, message, "internal_error")
                await respond(send_with_id, 500, body)
            elif not progress[1]:  # mid-answer: end it (the client may be gone already)
                with contextlib.suppress(Exception):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
