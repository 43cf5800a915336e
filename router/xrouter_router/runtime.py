"""A config compiled for serving: adapters with their secrets read, routing tables
built, keys hashed. A reload builds a new Runtime and swaps it in one assignment;
requests in flight keep the one they started with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import pricing
from .auth import KeyInfo, hash_key
from .breaker import Breaker
from .clients import Clients
from .config import Price, RouterConfig
from .metrics import Metrics
from .providers import Adapter, Usage, make_adapter
from .routing import CompiledRoute, RouteTarget, TargetState
from .secrets import read_secret


@dataclass(eq=False)
class Runtime:
    config: RouterConfig
    adapters: dict[str, Adapter]
    routes: dict[str, CompiledRoute]
    keys: dict[str, KeyInfo]  # by sha256
    prices: dict[str, Price]
    admin_sha256: str | None
    # Upstream models priced nowhere: their usage rows are flagged (pricing.py).
    unpriced: frozenset[str] = frozenset()

    # Per public model: the highest input-side and output rate (USD per million) over its
    # route's targets and fallbacks; filled on first use (a reload builds a new Runtime).
    _bounds: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)

    def cost(self, upstream_model: str, usage: Usage) -> float:
        price = self.prices.get(upstream_model)
        if price is None:
            return 0.0
        fresh_rate, read, write, write_1h = input_rates(price)
        fresh = max(0, usage.prompt - usage.cached - usage.cache_write)
        writes = usage.cache_write - usage.cache_write_1h
        return (
            fresh * fresh_rate
            + usage.cached * read
            + writes * write
            + usage.cache_write_1h * write_1h
            + usage.completion * price.output
        ) / 1e6

    def bound_rates(self, model: str) -> tuple[float, float]:
        """The dearest rate a prompt token and an output token of ``model`` can cost,
        over its route's targets and fallbacks: what a budget reservation prices at."""
        got = self._bounds.get(model)
        if got is None:
            price_in = price_out = 0.0
            route = self.routes.get(model)
            for name in [model, *(route.fallbacks + route.context_window_fallbacks if route else [])]:
                r = self.routes.get(name)
                for t in r.targets if r else ():
                    price = self.prices.get(t.state.upstream_model)
                    if price is not None:
                        price_in = max(price_in, *input_rates(price))
                        price_out = max(price_out, price.output)
            got = self._bounds[model] = (price_in, price_out)
        return got


def input_rates(p: Price) -> tuple[float, float, float, float]:
    """A price's rates for a prompt token, defaults applied: fresh input, cache read,
    cache write (Anthropic's 5-minute cache) and 1-hour cache write."""
    read = p.input if p.cached_input is None else p.cached_input
    write = p.input * 1.25 if p.cache_write_input is None else p.cache_write_input
    write_1h = p.input * 2 if p.cache_write_1h_input is None else p.cache_write_1h_input
    return p.input, read, write, write_1h


class TargetRegistry:
    """Target states by (provider, upstream model), kept across reloads so breakers,
    in-flight counts and latency estimates are not reset by a config change."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.states: dict[tuple[str, str], TargetState] = {}

    def get(self, config: RouterConfig, provider: str, model: str) -> TargetState:
        policy = config.breaker
        state = self.states.get((provider, model))
        if state is None:
            gauge = self.metrics.breaker_state.labels(provider, model)
            gauge.set(0)
            on_change: Callable[[int], None] = gauge.set
            breaker = Breaker(
                policy.failure_threshold, policy.window_seconds, policy.cooldown_seconds, on_change
            )
            state = self.states[(provider, model)] = TargetState(provider, model, breaker)
        else:
            b = state.breaker
            b.threshold, b.window, b.cooldown = (
                policy.failure_threshold,
                policy.window_seconds,
                policy.cooldown_seconds,
            )
        return state


def build(config: RouterConfig, targets: TargetRegistry, clients: Clients) -> Runtime:
    """Compile a config. Raises ValueError (e.g. a missing secret) without side effects
    on the running runtime. Adapters share ``clients`` (one per provider name), so a
    reload keeps the upstream connections."""
    adapters: dict[str, Adapter] = {}
    for p in config.providers:
        key = read_secret(p.api_key, f"providers[{p.name}].apiKey") if p.api_key else None
        adapters[p.name] = make_adapter(p, key, clients)
    routes = {
        r.name: CompiledRoute(
            r.name,
            r.strategy,
            r.hash_key,
            [RouteTarget(targets.get(config, t.provider, t.model), t.weight) for t in r.targets],
            list(r.fallbacks),
            list(r.context_window_fallbacks),
            r.cache,
        )
        for r in config.models
    }
    keys: dict[str, KeyInfo] = {}
    for k in config.keys:
        if k.secret is not None:
            digest = hash_key(read_secret(k.secret, f"keys[{k.name}].secret"))
        else:
            assert k.sha256 is not None
            digest = k.sha256
        keys[digest] = KeyInfo(k.name, digest, k.limits or config.default_limits)
    admin = hash_key(read_secret(config.admin_key, "adminKey")) if config.admin_key else None
    prices, unpriced = pricing.price_table(config, pricing.shipped())
    targets.metrics.unpriced_models.clear()
    for model in unpriced:
        targets.metrics.unpriced_models.labels(model).set(1)
    return Runtime(config, adapters, routes, keys, prices, admin, unpriced)
