"""The models reject what the CRD rejects, with messages that name the field."""

from __future__ import annotations

from typing import Any

import pytest
from xrouter_operator.models import check_cron
from xrouter_operator.render import RenderError, parse


def xr(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "providers": [{"name": "mock", "type": "mock"}],
        "models": [{"name": "m", "targets": [{"provider": "mock", "model": "echo"}]}],
    }
    base.update(spec)
    return {"apiVersion": "xrouter.io/v1alpha1", "kind": "XRouter", "metadata": {"name": "x"}, "spec": base}


def test_minimal_defaults() -> None:
    x = parse(xr())
    assert x.spec.replicas == 2
    assert x.spec.network_policy.enabled and x.spec.pod_disruption_budget.enabled
    assert not x.spec.autoscaling.enabled and not x.spec.suspend
    assert x.spec.rollout.max_unavailable == 0


MOCK_TARGET = [{"provider": "mock", "model": "e"}]
INVALID = [
    ({"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}, "spec.autoscaling.minReplicas"),
    (
        {"models": [{"name": "m", "targets": [{"provider": "mock", "model": "e", "weight": -1}]}]},
        "weight",
    ),
    ({"providers": [{"name": "mock", "type": "mock"}, {"name": "mock", "type": "mock"}]}, "spec.providers"),
    ({"models": [{"name": "m", "targets": [{"provider": "nope", "model": "e"}]}]}, "provider"),
    ({"providers": [{"name": "o", "type": "openai"}]}, "baseUrl"),
    ({"providers": [{"name": "a", "type": "azure-openai", "baseUrl": "https://a"}]}, "apiVersion"),
    (
        {
            "database": {"urlSecretRef": {"name": "pg", "key": "url"}},
            "backup": {"schedule": "61 * * * *", "storage": {"size": "1Gi"}},
        },
        "spec.backup.schedule",
    ),
    (
        {
            "database": {"urlSecretRef": {"name": "pg", "key": "url"}},
            "backup": {"schedule": "0 3 * * *", "storage": {"size": "1Gi", "existingClaim": "c"}},
        },
        "spec.backup.storage",
    ),
    ({"backup": {"schedule": "0 3 * * *", "storage": {"size": "1Gi"}}}, "spec.database"),
    ({"replicas": -1}, "replicas"),
    ({"models": [{"name": "m", "targets": [{"provider": "mock", "model": "e", "weight": 0}]}]}, "weight > 0"),
    ({"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}}, "spec.podDisruptionBudget"),
    ({"pods": {"labels": {"app.kubernetes.io/name": "x"}}}, "spec.pods.labels"),
    (
        {
            "keys": [
                {"name": "k", "secretKeyRef": {"name": "s", "key": "k"}, "limits": {"allowedModels": ["z"]}}
            ]
        },
        "allowedModels",
    ),
    ({"unknownField": 1}, "unknownField"),
    ({"pods": {"env": [{"name": "XR_ADMIN_KEY", "value": "mine"}]}}, "spec.pods.env"),
    ({"pods": {"env": [{"name": "XR_KEY_TEAM_A", "value": "k"}]}}, "reserved"),
    (
        {"models": [{"name": "m", "contextWindowFallbacks": ["ghost"], "targets": MOCK_TARGET}]},
        "spec.models[m].contextWindowFallbacks",
    ),
    (
        {"models": [{"name": "m", "contextWindowFallbacks": ["m"], "targets": MOCK_TARGET}]},
        "contextWindowFallbacks: 'm' is not another declared model",
    ),
    (
        # Declared, but more than the bound that keeps the CRD's CEL cost within budget.
        {
            "models": [{"name": "m", "contextWindowFallbacks": list("abcde"), "targets": MOCK_TARGET}]
            + [{"name": n, "targets": MOCK_TARGET} for n in "abcde"]
        },
        "spec.models[0].contextWindowFallbacks: List should have at most 4 items",
    ),
    ({"models": [{"name": "m", "cache": {"ttlSeconds": 0}, "targets": MOCK_TARGET}]}, "cache.ttlSeconds"),
    ({"models": [{"name": "m", "cache": {}, "targets": MOCK_TARGET}]}, "cache.ttlSeconds"),
    (
        {"models": [{"name": "m", "cache": {"ttlSeconds": 60, "scope": "global"}, "targets": MOCK_TARGET}]},
        "cache.scope",
    ),
    (
        {
            "models": [
                {"name": "m", "cache": {"ttlSeconds": 60, "maxEntryBytes": 2**25}, "targets": MOCK_TARGET}
            ]
        },
        "cache.maxEntryBytes",
    ),
    ({"defaultLimits": {"budgetPeriod": "monthly"}}, "limits.budgetPeriod daily, weekly or monthly needs"),
    ({"defaultLimits": {"budgetUsd": 5, "budgetPeriod": "hourly"}}, "defaultLimits.budgetPeriod"),
    (
        {
            "keys": [
                {"name": "k", "secretKeyRef": {"name": "s", "key": "k"}, "limits": {"budgetPeriod": "daily"}}
            ]
        },
        "needs limits.budgetUsd",
    ),
    ({"telemetry": {"endpoint": "otel:4318"}}, "spec.telemetry.endpoint"),
    ({"telemetry": {"endpoint": "grpc://otel:4317"}}, "spec.telemetry.endpoint"),
    ({"telemetry": {"endpoint": "https://user:secret@otel.example.com"}}, "spec.telemetry.endpoint"),
    ({"telemetry": {"endpoint": "http://otel:port"}}, "spec.telemetry.endpoint must be an http(s) URL"),
    ({"telemetry": {"endpoint": "http://:4318"}}, "spec.telemetry.endpoint must be an http(s) URL"),
    ({"telemetry": {"endpoint": "http://otel", "samplingRatio": 1.5}}, "spec.telemetry.samplingRatio"),
    ({"telemetry": {"samplingRatio": 0.5}}, "spec.telemetry.endpoint"),
    (
        {
            "telemetry": {
                "endpoint": "http://otel",
                "collector": {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}},
            }
        },
        "spec.telemetry.collector",
    ),
    (
        {
            "telemetry": {"endpoint": "http://otel"},
            "pods": {"env": [{"name": "OTEL_TRACES_SAMPLER", "value": "x"}]},
        },
        "OTEL_* variables set by spec.telemetry",
    ),
]


@pytest.mark.parametrize(("spec", "needle"), INVALID, ids=[n for _, n in INVALID])
def test_invalid_specs_name_the_field(spec: dict[str, Any], needle: str) -> None:
    with pytest.raises(RenderError) as e:
        parse(xr(**spec))
    assert needle in str(e.value)


@pytest.mark.parametrize(
    "expr", ["0 3 * * *", "*/5 * * * *", "0 0 1 jan,jul *", "15 2 * * mon-fri", "@daily"]
)
def test_cron_ok(expr: str) -> None:
    check_cron(expr)


@pytest.mark.parametrize(
    "expr", ["* * * *", "60 * * * *", "* 24 * * *", "0 0 0 * *", "@sometimes", "*/0 * * * *"]
)
def test_cron_bad(expr: str) -> None:
    with pytest.raises(ValueError, match=r"spec\.backup\.schedule"):
        check_cron(expr)


def test_helm_style_cpu_target_is_accepted_and_the_old_spelling_refused() -> None:
    x = parse(xr(autoscaling={"enabled": True, "targetCPUUtilizationPercentage": 55}))
    assert x.spec.autoscaling.target_cpu_utilization_percentage == 55
    with pytest.raises(RenderError, match="targetCpuUtilizationPercentage"):
        parse(xr(autoscaling={"enabled": True, "targetCpuUtilizationPercentage": 55}))
