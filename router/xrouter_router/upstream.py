"""One attempt at one upstream target: open the request through the target's
adapter, under the attempt's clock (``firstByte``, ``streamIdle``, ``total``), and
map what comes back: a 200 goes to ``streaming.answer``; anything else becomes an
``UpstreamFailure`` (worth another try, here or elsewhere) or an
``UpstreamRefusal`` (the upstream refused the request itself: passed on)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from . import quota, sse, streaming
from .call import Call
from .contextwindow import is_context_window_error
from .errors import UpstreamFailure, UpstreamRefusal
from .providers import Adapter
from .routing import TargetState
from .streaming import Clock

_RETRIABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})
# The provider refused the router's own credential: not the client's fault, and
# another target (another account or provider) may well work.
_CREDENTIAL_STATUS = frozenset({401, 403})

_CLOSED = httpx.ByteStream(b"")
_TIMEOUT_TAIL = sse.encode(b'{"error":{"message":"upstream timed out","type":"timeout_error"}}')


async def attempt(
    call: Call, adapter: Adapter, target: TargetState, payload: dict[str, Any], send: Any
) -> None:
    """Try ``target`` once. Returns once the client has its answer; raises
    ``UpstreamFailure``/``UpstreamRefusal`` while nothing has been sent yet."""
    t = adapter.provider.timeouts
    began = time.perf_counter()
    target.inflight += 1
    clock = Clock(t, began)
    try:
        async with asyncio.timeout_at(clock.first_deadline) as timeout:
            clock.timeout = timeout
            try:
                resp = await adapter.open(call.kind, payload, target.upstream_model, call.stream)
                quota.observe(target, resp.status_code, resp.headers)
                try:
                    if resp.status_code != 200:
                        await resp.aread()
                        clock.count(call)
                        raise _refusal(adapter, resp)
                    await streaming.answer(call, adapter, target, resp, payload, clock, send)
                finally:
                    await resp.aclose()
                    # httpx's Response and its BoundAsyncStream refer to each other:
                    # left alone, every answer (headers, aiohttp response, buffers)
                    # would wait for the cyclic GC instead of being freed here.
                    resp.stream = _CLOSED
            except (UpstreamFailure, httpx.TransportError):
                clock.count(call)
                raise
    except TimeoutError:
        if call.ttft is not None:  # mid-stream: too late to retry; end the stream
            if not call.answered:
                call.status, call.answered = 504, True
                await send({"type": "http.response.body", "body": _TIMEOUT_TAIL, "more_body": False})
            return
        clock.count(call)
        raise UpstreamFailure(
            504, f"upstream {adapter.name} timed out ({clock.expired()})", breaker=True
        ) from None
    except httpx.TimeoutException:
        raise UpstreamFailure(504, f"upstream {adapter.name} timed out", breaker=True) from None
    except httpx.TransportError as exc:
        raise UpstreamFailure(
            502, f"upstream {adapter.name} is unreachable: {type(exc).__name__}", breaker=True
        ) from None
    finally:
        target.inflight -= 1


def _refusal(adapter: Adapter, resp: httpx.Response) -> Exception:
    status = resp.status_code
    if status in _CREDENTIAL_STATUS:
        # Never the provider's own message: it may quote the key it refused.
        return UpstreamFailure(
            502,
            f"the provider refused the router's credential for provider {adapter.name} ({status})",
            breaker=True,
            retry=False,
            code="upstream_auth_error",
        )
    if status in _RETRIABLE_STATUS:
        code = 429 if status == 429 else (504 if status in (408, 504, 524) else 502)
        return UpstreamFailure(
            code,
            f"upstream {adapter.name} answered {status}",
            breaker=status != 429,
            retry_after=_retry_after(resp),
        )
    body = resp.content
    return UpstreamRefusal(
        status if 400 <= status < 500 else 502,
        adapter.error_body(status, body),
        context_window=is_context_window_error(status, body),
    )


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
