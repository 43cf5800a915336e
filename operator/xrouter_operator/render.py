"""Pure render: an XRouter (plus a few facts about the cluster) -> the manifests.

No API calls, no clock, no randomness: the same input always gives the same output,
which is what the golden tests pin down. Facts that only the cluster knows (the
existing admin key, which Prometheus CRDs exist) come in as :class:`RenderInputs`.
The builders live by concern in ``workload``, ``policy``, ``backup`` and ``monitoring``;
the router config in ``routerconfig``; names and labels in ``naming``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from xrouter_router import config as rc

from . import backup, backup_s3, canary, monitoring, policy, vpa, workload
from .kinds import apply_order
from .models import XRouter
from .parsing import RenderError, parse
from .routerconfig import router_config

__all__ = ["Manifest", "RenderError", "RenderInputs", "parse", "render"]

Manifest = dict[str, Any]


@dataclass(frozen=True)
class RenderInputs:
    """What render needs besides the XRouter, read from the cluster by the caller."""

    # The admin key for the Secret. None (an offline render): the Secret is left out, so
    # a render piped to kubectl can never install a key that is written down somewhere.
    admin_key: str | None = None
    # Value of the rotate annotation the current admin key was generated for.
    admin_key_rotation: str = ""
    # Optional kinds whose CRDs exist: "ServiceMonitor", "PrometheusRule" (the Prometheus
    # operator's), "VerticalPodAutoscaler".
    monitoring_kinds: frozenset[str] = field(default_factory=frozenset)
    # Cluster Services the upstream URLs name ("namespace/name"), for the NetworkPolicy's
    # egress to their pods' ports. Unknown ones (an offline render): the URL's port.
    services: Mapping[str, policy.ServiceFacts] = field(default_factory=dict)
    # The operator's own namespace (POD_NAMESPACE). A canary or blue-green rollout is
    # judged by the operator reading the pods' /metrics, so the NetworkPolicy admits it.
    operator_namespace: str | None = None


def pod_checksum(config_json: str, inputs: RenderInputs) -> str:
    """The pod template's checksum: pods roll when the config or the admin key changes.

    The key enters only as its own SHA-256 inside this digest, so the pod template never
    carries anything derived from it that could be checked against a guess cheaply."""
    facts: dict[str, str] = {"config": config_json, "adminKeyRotation": inputs.admin_key_rotation}
    if inputs.admin_key is not None:
        facts["adminKey"] = hashlib.sha256(inputs.admin_key.encode()).hexdigest()
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()


def render(xr: XRouter, inputs: RenderInputs | None = None) -> list[Manifest]:
    """Every object the XRouter asks for, in apply order (see ``kinds``). Raises RenderError."""
    try:
        return _render(xr, inputs or RenderInputs())
    except RenderError:
        raise
    except ValueError as e:
        # The builders' checks name the field ("spec.providers[x].baseUrl: ..."); a status
        # condition and an event carry the message.
        msg = str(e)
        raise RenderError(msg if msg.startswith("spec.") else f"spec: {msg}") from None


def _render(xr: XRouter, inputs: RenderInputs) -> list[Manifest]:
    config, secret_files = router_config(xr)
    config_json = rc.dump_config(config)
    spec = xr.spec
    out = [
        workload.service_account(xr),
        workload.config_map(xr, config_json),
        workload.service(xr),
        workload.deployment(xr, secret_files, pod_checksum(config_json, inputs)),
    ]
    if inputs.admin_key is not None:
        out.append(workload.admin_secret(xr, inputs.admin_key, inputs.admin_key_rotation))
    if spec.autoscaling.enabled:
        out.append(workload.hpa(xr))
    if spec.pod_disruption_budget.enabled:
        out.append(policy.pdb(xr))
    scraped = spec.monitoring.service_monitor.enabled and "ServiceMonitor" in inputs.monitoring_kinds
    if spec.network_policy.enabled:
        out.append(policy.network_policy(
                xr, scraped=scraped, services=inputs.services, operator_namespace=inputs.operator_namespace
            ))
    if spec.backup is not None:
        if spec.backup.storage.size is not None:
            out.append(backup.backup_pvc(xr))
        if spec.backup.storage.s3 is not None:
            out.append(backup_s3.export_config_map(xr))
        out.append(backup.backup_cronjob(xr))
    if scraped:
        out.append(monitoring.service_monitor(xr))
    if spec.monitoring.prometheus_rule.enabled and "PrometheusRule" in inputs.monitoring_kinds:
        out.append(monitoring.prometheus_rule(xr))
    if spec.vertical_autoscaling is not None and "VerticalPodAutoscaler" in inputs.monitoring_kinds:
        out.append(vpa.vertical_pod_autoscaler(xr))
    if spec.rollout.strategy != "rollingUpdate":
        out = canary.versioned(xr, out, label=spec.rollout.strategy == "blueGreen")
    return sorted(out, key=lambda m: apply_order(m["kind"]))
