"""Builders of the policies around the router pods: NetworkPolicy and PodDisruptionBudget."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .models import XRouter, XRouterSpec
from .naming import HTTP_PORT, meta, selector

Manifest = dict[str, Any]


def _peers(peers: list[Any]) -> list[dict[str, Any]]:
    return [p.model_dump(by_alias=True, exclude_none=True) for p in peers]


def _provider_ports(spec: XRouterSpec) -> list[int]:
    ports = set()
    for p in spec.providers:
        if p.base_url:
            u = urlsplit(p.base_url)
            ports.add(u.port or (80 if u.scheme == "http" else 443))
    return sorted(ports)


def network_policy(xr: XRouter) -> Manifest:
    np = xr.spec.network_policy
    name = xr.metadata.name
    ingress: list[dict[str, Any]] = [
        {
            "from": _peers(np.ingress_from) or [{"podSelector": {}}],
            "ports": [{"port": HTTP_PORT, "protocol": "TCP"}],
        }
    ]
    if np.allow_metrics_from:
        ingress.append(
            {"from": _peers(np.allow_metrics_from), "ports": [{"port": HTTP_PORT, "protocol": "TCP"}]}
        )
    egress: list[dict[str, Any]] = [
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
    ]
    if xr.spec.redis is not None:
        egress.append({"ports": [{"port": p, "protocol": "TCP"} for p in xr.spec.redis.egress_ports()]})
    if xr.spec.database is not None:
        egress.append({"ports": [{"port": xr.spec.database.port, "protocol": "TCP"}]})
    t = xr.spec.telemetry
    if t is not None:
        rule: dict[str, Any] = {"ports": [{"port": t.port(), "protocol": "TCP"}]}
        if t.collector is not None:
            rule = {"to": [t.collector.model_dump(by_alias=True, exclude_none=True)], **rule}
        egress.append(rule)
    ports = _provider_ports(xr.spec)
    if ports:
        egress.append(
            {
                "to": [{"ipBlock": {"cidr": c}} for c in np.egress.provider_cidrs]
                + [{"namespaceSelector": {}}],
                "ports": [{"port": p, "protocol": "TCP"} for p in ports],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(xr, name, "router"),
        "spec": {
            "podSelector": {"matchLabels": selector(name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


def pdb(xr: XRouter) -> Manifest:
    p = xr.spec.pod_disruption_budget
    spec: dict[str, Any] = {"selector": {"matchLabels": selector(xr.metadata.name)}}
    if p.min_available is not None:
        spec["minAvailable"] = p.min_available
    else:
        spec["maxUnavailable"] = p.max_unavailable if p.max_unavailable is not None else 1
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(xr, xr.metadata.name, "router"),
        "spec": spec,
    }
