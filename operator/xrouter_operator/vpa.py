"""Builder of the VerticalPodAutoscaler (spec.verticalAutoscaling). Pure: no API calls."""

from __future__ import annotations

from typing import Any, Literal

from .models import XRouter
from .naming import meta

Manifest = dict[str, Any]
VPA_API_VERSION = "autoscaling.k8s.io/v1"


def vertical_pod_autoscaler(xr: XRouter) -> Manifest:
    v = xr.spec.vertical_autoscaling
    if v is None:
        raise ValueError("spec.verticalAutoscaling is not set")
    policy: dict[str, Any] = {
        "containerName": "router",
        "controlledResources": list(v.controlled_resources),
        "controlledValues": v.controlled_values,
    }
    for key, amounts in (("minAllowed", v.min_allowed), ("maxAllowed", v.max_allowed)):
        if amounts.wire():
            policy[key] = amounts.wire()
    return {
        "apiVersion": VPA_API_VERSION,
        "kind": "VerticalPodAutoscaler",
        "metadata": meta(xr, xr.metadata.name, "router"),
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": xr.metadata.name},
            "updatePolicy": {"updateMode": v.update_mode},
            "resourcePolicy": {"containerPolicies": [policy]},
        },
    }


def vpa_condition(xr: XRouter, vpa_installed: bool) -> tuple[Literal["True", "False"], str, str] | None:
    """(status, reason, message) of the VerticalAutoscaling condition; None without the field."""
    if xr.spec.vertical_autoscaling is None:
        return None
    if vpa_installed:
        mode = xr.spec.vertical_autoscaling.update_mode
        return "True", "Rendered", f"VerticalPodAutoscaler {xr.metadata.name} (updateMode {mode})"
    return (
        "False",
        "CRDNotInstalled",
        f"spec.verticalAutoscaling is set but the VerticalPodAutoscaler CRD ({VPA_API_VERSION}) "
        "is not installed: no VPA is rendered; install the Vertical Pod Autoscaler",
    )
