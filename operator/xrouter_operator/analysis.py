"""Canary analysis by the operator itself: read the router pods' own /metrics, no Prometheus.

Each router pod exports ``xrouter_requests_total{model,provider,status}`` and the histogram
``xrouter_request_duration_seconds`` (router/xrouter_router/metrics.py). The operator sums
them per track (canary pods, stable pods), subtracts a baseline taken when the rollout
started (so stable pods are judged on the same window as the canary, not on their history),
and compares error rate and p95 latency with ``spec.rollout.analysis``.

An error is a 5xx answer: what a client cannot fix. 4xx (a bad key, a limit) say nothing
about the new version. Pure except :func:`scrape`.
"""

from __future__ import annotations

import math
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from .models_rollout import Analysis

REQUESTS = "xrouter_requests"
DURATION = "xrouter_request_duration_seconds"
P95_SLACK_SECONDS = 0.05


@dataclass(frozen=True)
class Sample:
    """Counters of one pod (or a sum of pods): requests, 5xx answers, latency buckets."""

    requests: float = 0.0
    errors: float = 0.0
    # le (upper bound) -> cumulative count, summed over models and providers.
    buckets: dict[float, float] = field(default_factory=dict)

    def __add__(self, o: Sample) -> Sample:
        keys = set(self.buckets) | set(o.buckets)
        return Sample(
            self.requests + o.requests,
            self.errors + o.errors,
            {k: self.buckets.get(k, 0.0) + o.buckets.get(k, 0.0) for k in keys},
        )

    def __sub__(self, o: Sample) -> Sample:
        # A counter that went down means the pod restarted: its counts since the restart
        # are all new (what Prometheus' rate() assumes too).
        if self.requests < o.requests:
            return self
        keys = set(self.buckets) | set(o.buckets)
        return Sample(
            self.requests - o.requests,
            self.errors - o.errors,
            {k: max(0.0, self.buckets.get(k, 0.0) - o.buckets.get(k, 0.0)) for k in keys},
        )

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def quantile(self, q: float) -> float | None:
        """As PromQL's histogram_quantile: linear within the bucket that holds the rank."""
        bounds = sorted(self.buckets)
        if not bounds or self.buckets[bounds[-1]] <= 0:
            return None
        rank = q * self.buckets[bounds[-1]]
        lower, below = 0.0, 0.0
        for le in bounds:
            count = self.buckets[le]
            if count >= rank:
                if math.isinf(le):
                    return lower  # beyond the last finite bucket: its bound is all we know
                inside = count - below
                return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
            lower, below = le, count
        return lower


def parse_metrics(text: str) -> Sample:
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == REQUESTS:
            for s in family.samples:
                if s.name.endswith("_total"):
                    requests += s.value
                    if s.labels.get("status", "").startswith("5"):
                        errors += s.value
        elif family.name == DURATION:
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    le = float(s.labels["le"])
                    buckets[le] = buckets.get(le, 0.0) + s.value
    return Sample(requests, errors, buckets)


def scrape(pod_ip: str, port: int, timeout: float = 2.0) -> Sample | None:
    """One pod's counters; None when it does not answer (not ready yet, or going away)."""
    try:
        with urllib.request.urlopen(f"http://{pod_ip}:{port}/metrics", timeout=timeout) as r:
            return parse_metrics(r.read().decode())
    except (OSError, ValueError):
        return None


def describe(name: str, s: Sample) -> str:
    p95 = s.quantile(0.95)
    lat = f", p95 {p95:.3f}s" if p95 is not None else ""
    return f"{name} {s.error_rate:.1%} errors over {s.requests:.0f} requests{lat}"


def judge(canary: Sample, stable: Sample, a: Analysis) -> tuple[bool | None, str]:
    """(True: passes, False: fails, None: too few requests yet) and the reason, naming figures."""
    seen = f"{describe('canary', canary)}; {describe('stable', stable)}"
    if canary.requests < a.min_requests:
        return None, f"waiting for {a.min_requests} canary requests ({seen})"
    rate = canary.error_rate
    if rate > a.max_error_rate:
        return False, f"canary error rate {rate:.1%} > maxErrorRate {a.max_error_rate:.1%} ({seen})"
    stable_known = stable.requests >= a.min_requests
    if stable_known and rate > stable.error_rate + a.max_error_rate_increase:
        return False, (
            f"canary error rate {rate:.1%} > stable {stable.error_rate:.1%} + maxErrorRateIncrease "
            f"{a.max_error_rate_increase:.1%} ({seen})"
        )
    p95 = canary.quantile(0.95)
    if p95 is not None and a.max_p95_seconds is not None and p95 > a.max_p95_seconds:
        return False, f"canary p95 {p95:.3f}s > maxP95Seconds {a.max_p95_seconds}s ({seen})"
    stable_p95 = stable.quantile(0.95) if stable_known else None
    # The ratio alone would fail a canary at 8 ms against a stable at 5 ms: noise within
    # one histogram bucket. It counts only beyond P95_SLACK_SECONDS of difference.
    if (
        p95 is not None
        and stable_p95 is not None
        and a.max_p95_ratio is not None
        and p95 > stable_p95 * a.max_p95_ratio
        and p95 - stable_p95 > P95_SLACK_SECONDS
    ):
        return False, (f"canary p95 {p95:.3f}s > {a.max_p95_ratio} x stable p95 {stable_p95:.3f}s ({seen})")
    return True, seen
