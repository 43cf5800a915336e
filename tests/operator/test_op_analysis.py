"""The operator's canary analysis reads what the router really exports: the router's own
Metrics registry renders the text the operator parses."""

from __future__ import annotations

import pytest
from xrouter_operator.analysis import Sample, judge, parse_metrics
from xrouter_operator.models_rollout import Analysis
from xrouter_router.metrics import Metrics


def router_metrics(ok: int, failed: int, seconds: float) -> str:
    m = Metrics()
    for status, n in (("200", ok), ("502", failed), ("429", 3)):
        for _ in range(n):
            m.child(m.requests, "gpt", "p", status).inc()
            m.child(m.request_duration, "gpt", "p").observe(seconds)
    return m.render().decode()


def test_parses_the_routers_own_metrics() -> None:
    s = parse_metrics(router_metrics(ok=90, failed=10, seconds=0.2))
    assert (s.requests, s.errors) == (103, 10)  # 429s are requests, not errors
    p95 = s.quantile(0.95)
    assert p95 is not None and 0.1 < p95 <= 0.25


def test_quantile_interpolates_like_histogram_quantile() -> None:
    s = Sample(100, 0, {0.1: 50, 0.2: 100, float("inf"): 100})
    assert s.quantile(0.5) == pytest.approx(0.1)
    assert s.quantile(0.75) == pytest.approx(0.15)
    assert Sample().quantile(0.95) is None


def test_a_restarted_pod_counts_from_zero() -> None:
    before, after = Sample(100, 5, {1.0: 100}), Sample(10, 1, {1.0: 10})
    assert (after - before).requests == 10


A = Analysis(min_requests=20, max_error_rate=0.05, max_error_rate_increase=0.02, max_p95_ratio=1.5)
FAST = {0.01: 100.0, float("inf"): 100.0}


@pytest.mark.parametrize(
    ("canary", "stable", "verdict", "words"),
    [
        (Sample(10, 10, {}), Sample(), None, "waiting for 20 canary requests"),
        (Sample(100, 6, FAST), Sample(), False, "maxErrorRate"),
        (Sample(100, 4, FAST), Sample(100, 0, FAST), False, "maxErrorRateIncrease"),
        (Sample(100, 4, FAST), Sample(100, 3, FAST), True, "canary 4.0% errors"),
        (Sample(100, 0, {0.5: 100, float("inf"): 100}), Sample(100, 0, FAST), False, "x stable p95"),
        (Sample(100, 0, {0.02: 100, float("inf"): 100}), Sample(100, 0, FAST), True, "p95"),
    ],
)
def test_judge(canary: Sample, stable: Sample, verdict: bool | None, words: str) -> None:
    got, reason = judge(canary, stable, A)
    assert got is verdict and words in reason, reason
