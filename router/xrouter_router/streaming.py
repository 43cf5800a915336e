"""Answering the client from a 200: a JSON body, or a server-sent-event stream
translated event by event as it arrives (never buffered). Also the attempt's clock:
``firstByte`` until the answer starts, then ``streamIdle`` between reads, all
within ``total``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from . import bodylog, sse
from .call import Call
from .config import Timeouts
from .errors import UpstreamFailure
from .providers import Adapter
from .routing import TargetState
from .sse import SSEParser

_BROKEN_TAIL = sse.encode(b'{"error":{"message":"upstream stream ended early","type":"upstream_error"}}')


async def _read(resp: httpx.Response) -> bytes:
    """The whole body. ``resp.stream`` is the transport's byte stream: what
    ``aread``/``aiter_raw`` wrap in three more generator layers (decoding, chunking,
    byte counting) that a proxy asking for ``identity`` never needs."""
    parts = [part async for part in resp.stream]  # type: ignore[union-attr]
    return parts[0] if len(parts) == 1 else b"".join(parts)


class Clock:
    """The deadlines of one attempt, kept on one ``asyncio.Timeout`` that is moved
    forward as the answer makes progress."""

    __slots__ = ("_end", "_loop", "began", "counted", "first_deadline", "started", "timeout", "timeouts")

    def __init__(self, timeouts: Timeouts, began: float) -> None:
        self._loop = asyncio.get_running_loop()
        now = self._loop.time()
        self._end = now + timeouts.total
        self.first_deadline = min(self._end, now + timeouts.first_byte)
        self.timeouts = timeouts
        self.began = began
        self.started = False  # the answer has started: silences are now streamIdle's
        self.counted = False  # this attempt's upstream time is in call.upstream_seconds
        self.timeout: asyncio.Timeout | None = None

    def progress(self) -> None:
        """Something arrived: the next silence may last ``streamIdle``."""
        self.started = True
        timeout = self.timeout
        assert timeout is not None
        idle = self.timeouts.stream_idle
        deadline = min(self._end, self._loop.time() + idle)
        when = timeout.when()
        # Moving a deadline costs a timer handle; a stream sends many events a second.
        # Always tighten; extend only by a useful step, so a silence is cut off after
        # at least 95 % of streamIdle.
        if when is None or deadline < when or deadline - when > idle * 0.05:
            timeout.reschedule(deadline)

    def count(self, call: Call) -> float:
        """Add this attempt's upstream time so far to the call (once); returns it."""
        elapsed = time.perf_counter() - self.began
        if not self.counted:
            self.counted = True
            call.upstream_seconds += elapsed
        return elapsed

    def expired(self) -> str:
        """Which limit ran out, for the error message."""
        t = self.timeouts
        if self._loop.time() >= self._end:
            return f"total {t.total:g} s"
        if self.started:
            return f"streamIdle {t.stream_idle:g} s"
        return f"firstByte {t.first_byte:g} s"


async def answer(
    call: Call,
    adapter: Adapter,
    target: TargetState,
    resp: httpx.Response,
    payload: dict[str, Any],
    clock: Clock,
    send: Any,
) -> None:
    if not call.stream:
        clock.progress()  # the headers are in; the body may take up to streamIdle
        data = await _read(resp)
        target.observe_latency(clock.count(call))
        out, call.usage = adapter.response(call.kind, data)
        # The upstream is done: writing to the client is not its time, and a deadline
        # firing between our two sends would leave half a response.
        assert clock.timeout is not None
        clock.timeout.reschedule(None)
        call.status = 200
        if call.log_bodies:
            bodylog.response(call.request_id, out)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(out)).encode()),
                    *call.meta(),
                ],
            }
        )
        call.answered = True
        await send({"type": "http.response.body", "body": out})
        return
    include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
    translator = adapter.translator(call.kind, include_usage, call.model)
    parser = SSEParser()
    started = False
    broken = False
    try:
        async for chunk in resp.stream:  # type: ignore[union-attr]  # see _read
            try:
                out = b"".join(translator.feed(ev.event, ev.data, ev.raw) for ev in parser.feed(chunk))
            except Exception:  # the translator choked on what the upstream sent
                if not started:
                    raise adapter.garbage("an unreadable stream") from None
                broken = True
                break
            if started:
                clock.progress()  # any bytes (a keep-alive comment too) end a silence
            if not out:
                continue
            if not started:
                target.observe_latency(clock.count(call))
                call.ttft = time.perf_counter() - call.started
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"text/event-stream"),
                            (b"cache-control", b"no-cache"),
                            *call.meta(),
                        ],
                    }
                )
                started = True
                call.meter = translator
                call.status = 200
                clock.progress()
            await send({"type": "http.response.body", "body": out, "more_body": True})
    except httpx.TransportError as exc:
        if not started:
            raise UpstreamFailure(502, f"upstream {adapter.name} broke the stream", breaker=True) from exc
        broken = True
    if not started:
        raise UpstreamFailure(502, f"upstream {adapter.name} sent an empty stream", breaker=True)
    tail = b""
    if broken or not translator.done:
        call.status = 502
        tail = _BROKEN_TAIL
    elif translator.failed:
        # The upstream's own error event ended the stream (the client has it): a failed
        # request, for the usage row, the metrics and the breaker (failover.py).
        call.status = 502
    call.answered = True
    await send({"type": "http.response.body", "body": tail, "more_body": False})
    call.usage = translator.usage
