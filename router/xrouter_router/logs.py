"""Structured JSON logs: one object per line. Request lines carry ids, names,
statuses and timings; never keys, prompts or completions."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

ACCESS = logging.getLogger("xrouter.access")
_INFO = logging.INFO
# The handler ``setup`` installed: while it is the only one in the way, access lines
# skip the LogRecord machinery (record, caller lookup, formatter) and are written
# straight to its stream, byte for byte what JSONFormatter would have produced.
_direct: logging.StreamHandler[Any] | None = None


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        else:
            entry["msg"] = record.getMessage()
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def setup(level: str = "INFO") -> None:
    global _direct
    handler = logging.StreamHandler(sys.stdout)
    _direct = handler
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # we log each request ourselves
    # httpx logs every upstream request at INFO: a second line per request, with the
    # upstream URL; our access line already says which provider answered.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))


def access(**fields: Any) -> None:
    if not ACCESS.isEnabledFor(_INFO):
        return
    ts = round(time.time(), 3)
    handler = _direct
    if handler is not None and _direct_ok(handler):
        entry: dict[str, Any] = {"ts": ts, "level": "info", "logger": "xrouter.access"}
        entry.update(fields)
        line = orjson.dumps(entry).decode() + handler.terminator
        try:
            with handler.lock:  # type: ignore[union-attr]
                handler.stream.write(line)
                handler.stream.flush()
            return
        except Exception:  # fall back to logging, and its own error handling
            pass
    fields["ts"] = ts
    ACCESS.info("request", extra={"fields": fields})


def _direct_ok(handler: logging.StreamHandler[Any]) -> bool:
    root = logging.root
    return (
        ACCESS.propagate
        and not ACCESS.handlers
        and not ACCESS.filters
        and len(root.handlers) == 1
        and root.handlers[0] is handler
        and not root.filters
        and not handler.filters
        and handler.level <= _INFO
        and type(handler.formatter) is JSONFormatter
    )
