"""Prometheus metrics. Labels are bounded: model names come from the config (or the
fixed ``unknown``), providers from the config, status from HTTP codes. No key, user
or request ids ever become label values."""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

UNKNOWN = "unknown"
_FAST = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
_SLOW = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

__all__ = ["CONTENT_TYPE_LATEST", "UNKNOWN", "Metrics"]

M = TypeVar("M", Counter, Gauge, Histogram)


class Metrics:
    """All the router's metrics, in their own registry (one per app instance)."""

    def __init__(self) -> None:
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "xrouter_requests", "Requests served", ["model", "provider", "status"], registry=r
        )
        self.request_duration = Histogram(
            "xrouter_request_duration_seconds",
            "Total request time",
            ["model", "provider"],
            buckets=_SLOW,
            registry=r,
        )
        self.upstream_duration = Histogram(
            "xrouter_upstream_duration_seconds",
            "Time spent waiting on the upstream",
            ["model", "provider"],
            buckets=_SLOW,
            registry=r,
        )
        self.overhead = Histogram(
            "xrouter_overhead_seconds",
            "The router's own time, excluding the upstream",
            ["model"],
            buckets=_FAST,
            registry=r,
        )
        self.ttft = Histogram(
            "xrouter_time_to_first_token_seconds",
            "Time to the first streamed chunk",
            ["model", "provider"],
            buckets=_SLOW,
            registry=r,
        )
        self.tokens = Counter("xrouter_tokens", "Tokens", ["model", "provider", "kind"], registry=r)
        self.cost = Counter("xrouter_cost_usd", "Cost in USD", ["model", "provider"], registry=r)
        self.inflight = Gauge("xrouter_inflight_requests", "Requests in flight", ["model"], registry=r)
        self.retries = Counter("xrouter_retries", "Upstream retries", ["model", "provider"], registry=r)
        self.fallbacks = Counter("xrouter_fallbacks", "Fallbacks to another model", ["model"], registry=r)
        self.context_window_fallbacks = Counter(
            "xrouter_context_window_fallbacks",
            "Requests moved to a contextWindowFallbacks model because the prompt was too long",
            ["model", "to"],
            registry=r,
        )
        self.cache_hits = Counter(
            "xrouter_cache_hits", "Requests answered from the response cache", ["model"], registry=r
        )
        self.cache_misses = Counter(
            "xrouter_cache_misses",
            "Requests on a cached route that went upstream (no entry, no-cache, a stream, Redis down)",
            ["model"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "xrouter_breaker_state",
            "Circuit breaker: 0 closed, 1 half-open, 2 open",
            ["provider", "upstream_model"],
            registry=r,
        )
        self.limit_rejections = Counter(
            "xrouter_limit_rejections", "Requests refused by a limit", ["limit"], registry=r
        )
        self.usage_buffer_rows = Gauge(
            "xrouter_usage_buffer_rows", "Usage rows not yet in Postgres (memory + spill)", registry=r
        )
        self.usage_rows_written = Counter(
            "xrouter_usage_rows_written", "Usage rows written to Postgres", registry=r
        )
        # Models priced nowhere (config prices or the catalogue): their cost is unknown, not $0.
        self.unpriced_models = Gauge(
            "xrouter_unpriced_models", "1 per upstream model with no price", ["upstream_model"], registry=r
        )
        self.unpriced_requests = Counter(
            "xrouter_unpriced_requests",
            "Requests to a model with no price",
            ["model", "upstream_model"],
            registry=r,
        )
        self.config_reloads = Counter("xrouter_config_reloads", "Config reloads", ["result"], registry=r)
        self.redis_up = Gauge("xrouter_redis_up", "1 when Redis answers", registry=r)
        self.database_up = Gauge("xrouter_database_up", "1 when PostgreSQL answers", registry=r)

    def child(self, metric: M, *labels: str) -> M:
        """``metric.labels(*labels)``, cached: label values are bounded, and the lookup
        is on the hot path."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def render(self) -> bytes:
        return generate_latest(self.registry)
