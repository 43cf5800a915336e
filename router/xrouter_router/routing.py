"""Choosing an upstream target for a public model name.

Each strategy returns every usable target, best first; the proxy tries them in that
order (retries stay on the first, failover walks the rest). Routing tables (weights,
hash rings) are built once per config, so a request only does a lookup.
"""

from __future__ import annotations

import bisect
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import mmh3

from .breaker import Breaker
from .config import CacheConfig, Strategy

VNODES = 256
_EWMA_ALPHA = 0.3


@dataclass(eq=False)
class TargetState:
    """Live state of one (provider, upstream model) pair. It survives config reloads."""

    provider: str
    upstream_model: str
    breaker: Breaker
    inflight: int = 0
    ewma_latency: float = 0.0
    samples: int = 0
    # Out of quota until this time (epoch seconds), as the upstream said (quota.py).
    quota_until: float = 0.0

    def observe_latency(self, seconds: float) -> None:
        if self.samples == 0:
            self.ewma_latency = seconds
        else:
            self.ewma_latency += _EWMA_ALPHA * (seconds - self.ewma_latency)
        self.samples += 1


@dataclass(eq=False)
class RouteTarget:
    state: TargetState
    weight: int


@dataclass(eq=False)
class CompiledRoute:
    name: str
    strategy: Strategy
    hash_key: str
    targets: list[RouteTarget]
    fallbacks: list[str]
    context_window_fallbacks: list[str] = field(default_factory=list)
    cache: CacheConfig | None = None
    _cum: list[int] = field(default_factory=list)
    _ring: list[int] = field(default_factory=list)
    _ring_idx: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        total = 0
        for t in self.targets:
            total += t.weight
            self._cum.append(total)
        if self.strategy is Strategy.HASH:
            points: list[tuple[int, int]] = []
            for i, t in enumerate(self.targets):
                if t.weight <= 0:
                    continue
                name = f"{t.state.provider}/{t.state.upstream_model}"
                for v in range(VNODES * t.weight):
                    points.append((mmh3.hash(f"{name}#{v}", signed=False), i))
            points.sort()
            self._ring = [p for p, _ in points]
            self._ring_idx = [i for _, i in points]

    def order(self, hash_value: str | None) -> list[TargetState]:
        """Targets in the order to try them; the first is the strategy's pick."""
        targets = self.targets
        if len(targets) == 1:
            return [targets[0].state]
        strategy = self.strategy
        if strategy is Strategy.WEIGHTED or (strategy is Strategy.HASH and hash_value is None):
            # A hash route with nothing to hash (no user, no header) has no conversation
            # to keep together, so it spreads by weight like ``weighted`` does.
            first = self._weighted()
        elif strategy is Strategy.LEAST_INFLIGHT:
            first = _argmin([t.state.inflight for t in targets], targets)
        elif strategy is Strategy.LATENCY:
            first = _argmin([t.state.ewma_latency for t in targets], targets)
        else:
            assert hash_value is not None
            first = self._ring_lookup(hash_value)
        rest = [t.state for i, t in enumerate(targets) if i != first and t.weight > 0]
        rest += [t.state for i, t in enumerate(targets) if i != first and t.weight == 0]
        ordered = [targets[first].state, *rest]
        now = time.time()
        if any(s.quota_until > now for s in ordered):
            # Out of quota until its reset: tried only once every other target failed.
            ordered = [s for s in ordered if s.quota_until <= now] + [
                s for s in ordered if s.quota_until > now
            ]
        return ordered

    def _weighted(self) -> int:
        if self._cum[-1] <= 0:  # every weight is 0: no preference left to follow
            return random.randrange(len(self.targets))
        first = bisect.bisect_right(self._cum, random.random() * self._cum[-1])
        return min(first, len(self.targets) - 1)

    def _ring_lookup(self, value: str) -> int:
        h = mmh3.hash(value, signed=False)
        pos = bisect.bisect_left(self._ring, h)
        if pos == len(self._ring):
            pos = 0
        return self._ring_idx[pos]


def _argmin(values: Sequence[float], targets: list[RouteTarget]) -> int:
    best = min(v for v, t in zip(values, targets, strict=True) if t.weight > 0)
    choices = [i for i, (v, t) in enumerate(zip(values, targets, strict=True)) if v == best and t.weight > 0]
    return choices[0] if len(choices) == 1 else random.choice(choices)
