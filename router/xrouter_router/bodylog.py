"""``server.logBodies``: request and response bodies in the log, at debug level on
the ``xrouter.bodies`` logger, with credentials redacted. Bodies hold prompts and
completions, so this is for debugging, never on by default."""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson

log = logging.getLogger("xrouter.bodies")
REDACTED = "[redacted]"
# Field names that carry credentials (``max_tokens`` and friends are not secrets).
_SECRET_NAME = re.compile(r"(?i)(^|[-_])(api[-_]?key|key|authorization|secret|password|token|credentials?)$")
# Values that look like credentials wherever they appear.
_SECRET_VALUE = re.compile(r"(?i)\b(bearer\s+\S+|sk-[A-Za-z0-9_-]{6,}|sk_[A-Za-z0-9_-]{6,})")


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and _SECRET_NAME.search(k) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value)
    return value


def request(request_id: str, payload: dict[str, Any]) -> None:
    if log.isEnabledFor(logging.DEBUG):
        _emit("request body", request_id, redact(payload))


def response(request_id: str, body: bytes) -> None:
    if not log.isEnabledFor(logging.DEBUG):
        return
    try:
        data: Any = redact(orjson.loads(body))
    except orjson.JSONDecodeError:
        data = _SECRET_VALUE.sub(REDACTED, body.decode("utf-8", "replace"))
    _emit("response body", request_id, data)


def _emit(what: str, request_id: str, body: Any) -> None:
    log.debug(what, extra={"fields": {"msg": what, "request_id": request_id, "body": body}})
