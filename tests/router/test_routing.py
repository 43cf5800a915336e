"""Routing strategies: weighted, least in-flight, lowest latency, consistent hash."""

from __future__ import annotations

from collections import Counter

from xrouter_router.breaker import Breaker
from xrouter_router.config import Strategy
from xrouter_router.routing import CompiledRoute, RouteTarget, TargetState


def _targets(*weights: int) -> list[RouteTarget]:
    return [RouteTarget(TargetState("p", f"m{i}", Breaker(5, 30, 15)), w) for i, w in enumerate(weights)]


def test_weighted_follows_weights() -> None:
    route = CompiledRoute("r", Strategy.WEIGHTED, "user", _targets(3, 1, 0), [])
    picks = Counter(route.order(None)[0].upstream_model for _ in range(4000))
    assert picks["m2"] == 0
    assert 0.68 < picks["m0"] / 4000 < 0.82
    # Every target stays available for failover, zero-weight ones last.
    assert [t.upstream_model for t in route.order(None)][-1] == "m2"


def test_least_inflight() -> None:
    targets = _targets(1, 1, 1)
    targets[0].state.inflight, targets[1].state.inflight, targets[2].state.inflight = 4, 1, 3
    route = CompiledRoute("r", Strategy.LEAST_INFLIGHT, "user", targets, [])
    assert route.order(None)[0].upstream_model == "m1"


def test_lowest_latency_ewma() -> None:
    targets = _targets(1, 1)
    for _ in range(5):
        targets[0].state.observe_latency(0.5)
        targets[1].state.observe_latency(0.1)
    route = CompiledRoute("r", Strategy.LATENCY, "user", targets, [])
    assert route.order(None)[0].upstream_model == "m1"
    targets[1].state.observe_latency(5.0)  # one slow answer moves the estimate
    assert route.order(None)[0].upstream_model == "m0"


def test_consistent_hash_is_sticky_and_spread() -> None:
    route = CompiledRoute("r", Strategy.HASH, "user", _targets(1, 1, 1, 1), [])
    first = {f"user-{i}": route.order(f"user-{i}")[0].upstream_model for i in range(400)}
    assert all(route.order(u)[0].upstream_model == m for u, m in first.items())
    spread = Counter(first.values())
    assert len(spread) == 4 and min(spread.values()) > 50
    # Removing a target moves only the conversations that were on it.
    smaller = CompiledRoute("r", Strategy.HASH, "user", _targets(1, 1, 1, 1)[:3], [])
    moved = [u for u, m in first.items() if m != "m3" and smaller.order(u)[0].upstream_model != m]
    assert moved == []


def test_hash_without_a_value_follows_weights() -> None:
    # No user and no header: nothing to keep together, so the pick is by weight and a
    # weight-0 backup is only ever tried after the others.
    route = CompiledRoute("r", Strategy.HASH, "user", _targets(3, 1, 0), [])
    n = 4000
    picks = Counter(route.order(None)[0].upstream_model for _ in range(n))
    assert picks["m2"] == 0
    assert 0.68 < picks["m0"] / n < 0.82  # 0.75 expected; ±0.07 is over 10 standard deviations
    assert all(route.order(None)[-1].upstream_model == "m2" for _ in range(50))
    # With a value it still sticks to the ring.
    assert len({route.order("user-7")[0].upstream_model for _ in range(50)}) == 1
