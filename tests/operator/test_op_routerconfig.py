"""The router features in the spec reach the router: the ConfigMap the operator renders,
read back by the router's own parser, carries them."""

from __future__ import annotations

from typing import Any

from xrouter_operator.render import RenderInputs, parse, render
from xrouter_router.config import RouterConfig, parse_config

INPUTS = RenderInputs(admin_key="k")
SECRET = {"name": "keys", "key": "a"}


def xr(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "providers": [{"name": "mock", "type": "mock"}],
        "models": [
            {
                "name": "small",
                "targets": [{"provider": "mock", "model": "s"}],
                "contextWindowFallbacks": ["large", "huge"],
                "cache": {"ttlSeconds": 600, "scope": "shared", "maxEntryBytes": 65536},
            },
            {"name": "large", "targets": [{"provider": "mock", "model": "l"}], "cache": {"ttlSeconds": 60}},
            {"name": "huge", "targets": [{"provider": "mock", "model": "h"}]},
        ],
        "keys": [
            {"name": "team-a", "secretKeyRef": SECRET, "limits": {"budgetUsd": 20, "budgetPeriod": "weekly"}}
        ],
        "defaultLimits": {"budgetUsd": 5, "budgetPeriod": "daily"},
    }
    base.update(spec)
    return {
        "apiVersion": "xrouter.io/v1alpha1",
        "kind": "XRouter",
        "metadata": {"name": "x", "namespace": "ns", "uid": "u"},
        "spec": base,
    }


def router_sees(obj: dict[str, Any]) -> RouterConfig:
    cm = next(m for m in render(parse(obj), INPUTS) if m["kind"] == "ConfigMap")
    return parse_config(cm["data"]["config.json"])


def test_context_window_fallbacks_and_cache_reach_the_router() -> None:
    config = router_sees(xr())
    routes = {m.name: m for m in config.models}
    assert routes["small"].context_window_fallbacks == ["large", "huge"]
    assert routes["small"].cache is not None
    assert (routes["small"].cache.ttl_seconds, routes["small"].cache.scope) == (600, "shared")
    assert routes["small"].cache.max_entry_bytes == 65536
    # Defaults of the router's own model apply where the spec leaves them out.
    assert routes["large"].cache is not None
    assert (routes["large"].cache.scope, routes["large"].cache.max_entry_bytes) == ("key", 1024 * 1024)
    assert routes["huge"].cache is None and routes["huge"].context_window_fallbacks == []


def test_budget_periods_reach_the_router() -> None:
    config = router_sees(xr())
    assert config.default_limits.budget_period == "daily"
    key = next(k for k in config.keys if k.name == "team-a")
    assert key.limits is not None and (key.limits.budget_usd, key.limits.budget_period) == (20, "weekly")


def test_capture_content_reaches_the_router_only_when_asked() -> None:
    assert router_sees(xr()).telemetry.capture_content is False
    on = xr(telemetry={"endpoint": "http://otel:4318", "captureContent": True})
    assert router_sees(on).telemetry.capture_content is True
    quiet = xr(telemetry={"endpoint": "http://otel:4318"})
    assert router_sees(quiet).telemetry.capture_content is False


def test_each_xrouter_gets_its_own_redis_namespace() -> None:
    redis = {"urlSecretRef": {"name": "redis", "key": "url"}}
    first = xr(redis=redis)
    second = xr(redis=redis)
    second["metadata"] = {**second["metadata"], "name": "y", "uid": "v"}
    a, b = router_sees(first).redis.namespace, router_sees(second).redis.namespace
    assert (a, b) == ("xr:u", "xr:v")
