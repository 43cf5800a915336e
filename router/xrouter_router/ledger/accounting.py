"""The end of every LLM request: its metrics, its usage row and its access-log line."""

from __future__ import annotations

import time

from .. import logs
from ..call import Call
from ..metrics import Metrics
from ..runtime import Runtime
from .usage import UsageRecorder, UsageRow


def finish(call: Call, rt: Runtime, metrics: Metrics, usage: UsageRecorder, record: bool) -> None:
    m = metrics
    total = time.perf_counter() - call.started
    overhead = max(0.0, total - call.upstream_seconds)
    model, provider = call.model, call.provider
    status = call.status or 500
    m.child(m.requests, model, provider, str(status)).inc()
    m.child(m.request_duration, model, provider).observe(total)
    m.child(m.overhead, model).observe(overhead)
    cost = 0.0
    if call.upstream_seconds:
        m.child(m.upstream_duration, model, provider).observe(call.upstream_seconds)
    if call.ttft is not None:
        m.child(m.ttft, model, provider).observe(call.ttft)
    u = call.usage
    if u.prompt or u.completion:
        m.child(m.tokens, model, provider, "prompt").inc(u.prompt)
        m.child(m.tokens, model, provider, "completion").inc(u.completion)
        if u.cached:
            m.child(m.tokens, model, provider, "cached").inc(u.cached)
        cost = call.cost = rt.cost(call.upstream_model, u)
        if cost:
            m.child(m.cost, model, provider).inc(cost)
    unpriced = call.upstream_model in rt.unpriced
    if unpriced:
        m.child(m.unpriced_requests, model, call.upstream_model).inc()
    key = call.key.name if call.key else None
    if record and key is not None:
        usage.record(
            UsageRow(
                call.request_id,
                key,
                model,
                provider,
                call.upstream_model,
                u.prompt,
                u.completion,
                u.cached,
                cost,
                status,
                round(total * 1000, 3),
                time.time(),
                call.cache_status,
                call.estimated,
                unpriced,
            )
        )
    logs.access(
        request_id=call.request_id,
        key=key,
        model=model,
        provider=provider,
        upstream_model=call.upstream_model or None,
        status=status,
        stream=call.stream,
        latency_ms=round(total * 1000, 3),
        overhead_ms=round(overhead * 1000, 3),
        prompt_tokens=u.prompt,
        completion_tokens=u.completion,
    )
