"""OpenTelemetry traces, exported over OTLP/HTTP (protobuf): one server span per LLM
request and one client span per upstream attempt, with the GenAI semantic-convention
attributes.

Configured by the standard ``OTEL_*`` environment variables (endpoint, headers,
sampler, batch sizes, service name, resource attributes), read by the SDK itself.
Off unless an OTLP endpoint is set; then no OpenTelemetry module is even imported
and a request pays one ``is None`` test. On, the spans are built after the client
has its answer, from what the request's ``Trace`` collected on the way, so the
answer never waits for them; the SDK's batch processor exports from its own thread.

Prompts and completions go into spans only with ``telemetry.captureContent``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from .asgi import Scope
from .call import Call
from .tracing import Trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

log = logging.getLogger("xrouter.telemetry")

# gen_ai.system / gen_ai.provider.name by provider type.
SYSTEMS = {
    "openai": "openai",
    "openai-compatible": "openai",
    "azure-openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "mock": "xrouter.mock",
}
# The Responses and Messages APIs are chats too (the semantic conventions have no
# operation of their own for them); ``xrouter.api`` tells the endpoints apart.
OPERATIONS = {
    "chat": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "responses": "chat",
    "messages": "chat",
}
# Request parameters recorded as gen_ai.request.* attributes.
PARAMETERS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "max_output_tokens": "gen_ai.request.max_tokens",  # /v1/responses
    "top_k": "gen_ai.request.top_k",  # /v1/messages
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
}


def otlp_configured(env: Mapping[str, str] = os.environ) -> bool:
    """OTLP trace export is configured (and not switched off)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() in ("none", ""):
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


class Telemetry:
    """The tracer provider and its OTLP exporter. Build only when ``otlp_configured()``."""

    def __init__(self) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "xrouter-router"}
        # The SDK reads OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_* and the exporter's OTEL_EXPORTER_OTLP_*.
        self.provider: TracerProvider = TracerProvider(
            resource=Resource.create(attributes), shutdown_on_exit=False
        )
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer: Tracer = self.provider.get_tracer("xrouter.router")
        self.propagator = TraceContextTextMapPropagator()
        log.info("OpenTelemetry traces are exported over OTLP/HTTP")

    def shutdown(self) -> None:
        """Export what is buffered, then stop (blocking: run it off the event loop)."""
        self.provider.shutdown()

    def export(self, call: Call, scope: Scope, payload: dict[str, Any] | None) -> None:
        """The request's spans, from its finished ``Call``. Never raises: the client
        has its answer already, and a trace is not worth an error."""
        try:
            self._export(call, scope, payload)
        except Exception as exc:
            log.warning("could not build the spans of request %s: %s", call.request_id, type(exc).__name__)

    def _export(self, call: Call, scope: Scope, payload: dict[str, Any] | None) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

        trace = call.trace or Trace()
        # Call times are perf_counter readings; spans want epoch nanoseconds.
        offset = time.time_ns() - time.perf_counter_ns()

        def ns(t: float) -> int:
            return offset + int(t * 1e9)

        carrier: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name in (b"traceparent", b"tracestate"):
                carrier[name.decode()] = value.decode("latin-1")
        parent = self.propagator.extract(carrier) if carrier else None
        operation = OPERATIONS.get(call.kind, call.kind)
        answered = trace.attempts[-1] if trace.attempts and trace.attempts[-1].error is None else None
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": call.model,
            "http.request.method": "POST",
            "http.response.status_code": call.status or 500,
            "xrouter.api": call.kind,
            "xrouter.request_id": call.request_id,
            "xrouter.stream": call.stream,
        }
        if call.key is not None:
            attrs["xrouter.key"] = call.key.name
        if call.cache_status is not None:
            attrs["xrouter.cache"] = call.cache_status
        if answered is not None:
            system = SYSTEMS.get(answered.provider_type, answered.provider_type)
            attrs["gen_ai.system"] = attrs["gen_ai.provider.name"] = system
            attrs["xrouter.provider"] = answered.provider
            attrs["xrouter.upstream_model"] = answered.upstream_model
        if payload is not None:
            for field, attr in PARAMETERS.items():
                value = payload.get(field)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    attrs[attr] = value
        self._response(attrs, call, trace)
        if trace.capture_content and payload is not None:
            attrs["gen_ai.input.messages"] = orjson.dumps(
                payload.get("messages", payload.get("prompt", payload.get("input")))
            ).decode()
            if trace.output:
                out = [{"role": "assistant", "content": text} for text in trace.output]
                attrs["gen_ai.output.messages"] = orjson.dumps(out).decode()
        span = self.tracer.start_span(
            f"{operation} {call.model}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attrs,
            start_time=ns(call.started),
        )
        if not span.is_recording():  # sampled out: its children would be too
            span.end()
            return
        if (call.status or 500) >= 500:
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute("error.type", str(call.status or 500))
        context = set_span_in_context(span)
        for a in trace.attempts:
            system = SYSTEMS.get(a.provider_type, a.provider_type)
            child_attrs: dict[str, Any] = {
                "gen_ai.operation.name": operation,
                "gen_ai.system": system,
                "gen_ai.provider.name": system,
                "gen_ai.request.model": a.upstream_model,
                "xrouter.provider": a.provider,
            }
            if a.status:
                child_attrs["http.response.status_code"] = a.status
            if a is answered:
                self._response(child_attrs, call, trace)
            child = self.tracer.start_span(
                f"{operation} {a.upstream_model}",
                context=context,
                kind=SpanKind.CLIENT,
                attributes=child_attrs,
                start_time=ns(a.began),
            )
            if a.error is not None:
                child.set_attribute("error.type", a.error)
                child.set_status(Status(StatusCode.ERROR))
            child.end(end_time=ns(a.ended))
        span.end()

    @staticmethod
    def _response(attrs: dict[str, Any], call: Call, trace: Trace) -> None:
        if trace.response_model is not None:
            attrs["gen_ai.response.model"] = trace.response_model
        if trace.response_id is not None:
            attrs["gen_ai.response.id"] = trace.response_id
        if trace.finish_reasons:
            attrs["gen_ai.response.finish_reasons"] = list(trace.finish_reasons)
        if call.usage.prompt or call.usage.completion:
            attrs["gen_ai.usage.input_tokens"] = call.usage.prompt
            attrs["gen_ai.usage.output_tokens"] = call.usage.completion
