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
