"""The retry and failover loop: the requested model's targets in the strategy's
order, each tried up to ``maxRetries`` more times with jittered backoff while its
breaker admits it, then the model's fallbacks (those the key may use) the same way.
Only before the first byte of the answer has gone to the client."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from .asgi import Message, Scope, Send, header, respond
from .breaker import Breaker, Ticket
from .call import Call
from .config import RetryPolicy
from .errors import APIError, UpstreamFailure, UpstreamRefusal
from .fronts.translate import adapter_for
from .metrics import Metrics
from .providers import Adapter
from .routing import TargetState
from .runtime import Runtime
from .tracing import AttemptRecord
from .upstream import attempt


async def serve(
    call: Call, rt: Runtime, metrics: Metrics, payload: dict[str, Any], scope: Scope, send: Send
) -> None:
    route = rt.routes[call.model]
    hash_value: str | None
    if route.hash_key == "user":
        user = payload.get("user")
        hash_value = user if isinstance(user, str) else None
    else:
        raw = header(scope, route.hash_key[7:].lower().encode())
        hash_value = raw.decode("latin-1") if raw is not None else None
    retry = rt.config.retry
    final: UpstreamFailure | UpstreamRefusal | None = None  # what the last model tried said
    # A fallback is another model: the key must be allowed to use it like any model
    # it names itself, or a key kept to a cheap model would be served by a dear one.
    allowed = call.key.limits.allowed_models if call.key is not None else None
    plan = [
        call.model,
        *(route.fallbacks if allowed is None else (m for m in route.fallbacks if m in allowed)),
    ]
    windows = route.context_window_fallbacks
    if allowed is not None:
        windows = [m for m in windows if m in allowed]
    widened = False  # now walking contextWindowFallbacks
    i = 0
    while i < len(plan):
        name = plan[i]
        i += 1
        if i > 1 and not widened:
            metrics.child(metrics.fallbacks, call.model).inc()
        outcome = await _model(call, rt, metrics, payload, send, name, hash_value, retry)
        if outcome is None:
            return
        if outcome is not _EXHAUSTED:
            final = outcome
        if isinstance(outcome, UpstreamRefusal):
            # The prompt is too long for this model: only a larger context helps, so
            # the rest of the plan becomes the route's contextWindowFallbacks.
            if not widened:
                widened, plan, i = True, list(windows), 0
            if i < len(plan):
                metrics.child(metrics.context_window_fallbacks, call.model, plan[i]).inc()
    if isinstance(final, UpstreamRefusal):  # no larger model could take it
        call.status = final.status
        await respond(send, final.status, final.body, call.meta())
        return
    last = final
    if last is None:
        call.provider = "none"
        error = APIError(
            503, "No upstream is available for this model (circuit open)", code="upstream_unavailable"
        )
    else:
        error = APIError(
            last.status,
            last.message,
            code=last.code,
            retry_after=last.retry_after if last.status == 429 else None,
        )
    call.status = error.status
    await respond(send, error.status, error.body(), error.headers()[1:] + call.meta())


_EXHAUSTED = UpstreamFailure(503, "no target admitted the request", breaker=False)


async def _model(
    call: Call,
    rt: Runtime,
    metrics: Metrics,
    payload: dict[str, Any],
    send: Send,
    name: str,
    hash_value: str | None,
    retry: RetryPolicy,
) -> UpstreamFailure | UpstreamRefusal | None:
    """Try one public model's targets. None: the client has its answer. A refusal
    that says the prompt is too long comes back instead of being sent when the
    request's route has contextWindowFallbacks; otherwise the last failure (or
    ``_EXHAUSTED`` when no breaker admitted an attempt)."""
    last: UpstreamFailure = _EXHAUSTED
    windows = bool(rt.routes[call.model].context_window_fallbacks)
    for target in rt.routes[name].order(hash_value):
        adapter = adapter_for(rt.adapters[target.provider], call.kind, target.upstream_model)
        if not adapter.supports(call.kind):
            continue
        retries = adapter.provider.max_retries
        breaker = target.breaker
        for n in range(retries + 1):
            ticket = breaker.admit()
            if ticket is None:
                break
            call.provider, call.upstream_model = target.provider, target.upstream_model
            # Only a probe's send is wrapped: every other ticket's verdict waits for the end.
            out = _ProbeSend(send, breaker, ticket) if ticket.probe else send
            try:
                await (attempt if call.trace is None else _traced)(call, adapter, target, payload, out)
            except UpstreamFailure as exc:
                last = exc
                if exc.breaker:
                    breaker.failure(ticket)
                else:
                    breaker.release(ticket)
                if not exc.retry:
                    break
            except UpstreamRefusal as exc:
                breaker.release(ticket)
                if exc.context_window and windows:
                    return exc
                call.status = exc.status
                await respond(send, exc.status, exc.body, call.meta())
                return None
            except BaseException:  # a 400 from the adapter, the client leaving, a bug
                breaker.release(ticket)
                raise
            else:
                # A stream that broke, stalled or ended in the upstream's error event
                # after it started (too late to retry) still counts against the target.
                if call.status >= 500:
                    breaker.failure(ticket)
                else:
                    breaker.success(ticket)
                return None
            if n == retries:
                break
            delay = min(retry.max_delay_seconds, retry.base_delay_seconds * 2**n)
            delay *= 0.5 + random.random() / 2
            if last.retry_after is not None:
                if last.retry_after > retry.max_delay_seconds:
                    break  # too long to wait here: try elsewhere
                delay = max(delay, last.retry_after)
            metrics.child(metrics.retries, call.model, target.provider).inc()
            await asyncio.sleep(delay)
    return last


class _ProbeSend:
    """The half-open probe's ``send``: a 200 starting to reach the client closes the
    breaker there and then. Waiting for the last byte would keep a recovered target
    refusing everyone else (503, circuit open) for as long as one long stream runs."""

    __slots__ = ("_send", "breaker", "ticket")

    def __init__(self, send: Send, breaker: Breaker, ticket: Ticket) -> None:
        self._send = send
        self.breaker = breaker
        self.ticket = ticket

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 200:
            self.breaker.success(self.ticket)
        await self._send(message)


async def _traced(
    call: Call, adapter: Adapter, target: TargetState, payload: dict[str, Any], send: Send
) -> None:
    """``attempt``, recorded for the request's trace (telemetry on)."""
    trace = call.trace
    assert trace is not None
    began = time.perf_counter()
    error: str | None = None
    status = 0
    try:
        await attempt(call, adapter, target, payload, send)
        status = call.status
    except (UpstreamFailure, UpstreamRefusal) as exc:
        error, status = type(exc).__name__, exc.status
        raise
    except BaseException as exc:
        error = type(exc).__name__
        raise
    finally:
        trace.attempts.append(
            AttemptRecord(
                target.provider,
                adapter.provider.type.value,
                target.upstream_model,
                began,
                time.perf_counter(),
                error,
                status,
            )
        )
