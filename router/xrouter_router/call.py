"""``Call``: everything about one client request on an LLM endpoint, filled in as
it progresses and read once at the end for metrics, the usage row and the log."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from .auth import KeyInfo
from .fronts.base import Notes
from .metrics import UNKNOWN
from .providers import StreamTranslator, Usage
from .tracing import Trace


@dataclass(slots=True)
class Call:
    request_id: str
    started: float
    kind: str
    model: str = UNKNOWN  # label value: a configured model or "unknown"
    provider: str = "none"
    upstream_model: str = ""
    key: KeyInfo | None = None
    status: int = 0
    stream: bool = False
    log_bodies: bool = False  # server.logBodies
    upstream_seconds: float = 0.0
    ttft: float | None = None
    usage: Usage = field(default_factory=Usage)
    answered: bool = False  # the final body has been handed to the server
    disconnected: bool = False
    cache_status: str | None = None  # on a cached route: "cache_hit" or "cache_miss"
    trace: Trace | None = None  # only while OpenTelemetry export is on
    watcher: asyncio.Task[None] | None = None
    body_bytes: int = 0  # the request body's size: the prompt estimate (meter.py)
    # The translator of the attempt whose answer started streaming: what was streamed,
    # and the upstream's counts so far, whatever ends the stream.
    meter: StreamTranslator | None = None
    estimated: bool = False  # usage is (partly) the router's estimate, not the upstream's
    cost: float = 0.0  # USD, set by accounting.finish
    notes: Notes = field(default_factory=Notes)  # what a translation dropped, and its renames

    def meta(self) -> list[tuple[bytes, bytes]]:
        """Response headers about the router's own share of the time so far."""
        overhead = time.perf_counter() - self.started - self.upstream_seconds
        return [(b"x-xrouter-overhead-ms", f"{overhead * 1000:.3f}".encode()), *self.notes.header()]
