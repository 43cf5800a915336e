"""Builders of the Prometheus operator objects: ServiceMonitor and PrometheusRule."""

from __future__ import annotations

from typing import Any

from .models import XRouter
from .naming import labels, meta

Manifest = dict[str, Any]


def service_monitor(xr: XRouter) -> Manifest:
    sm = xr.spec.monitoring.service_monitor
    md = meta(xr, xr.metadata.name, "router")
    md["labels"] = {**sm.labels, **md["labels"]}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": md,
        "spec": {
            "selector": {"matchLabels": labels(xr.metadata.name, "router")},
            "namespaceSelector": {"matchNames": [xr.metadata.namespace]},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": sm.interval}],
        },
    }


def prometheus_rule(xr: XRouter) -> Manifest:
    pr = xr.spec.monitoring.prometheus_rule
    md = meta(xr, xr.metadata.name, "router")
    md["labels"] = {**pr.labels, **md["labels"]}
    ns, name = xr.metadata.namespace, xr.metadata.name
    sel = f'namespace="{ns}", service="{name}"'
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": md,
        "spec": {
            "groups": [
                {
                    "name": f"xrouter-{name}",
                    "rules": [
                        {
                            "alert": "XRouterDown",
                            "expr": f"sum(up{{{sel}}}) == 0 or absent(up{{{sel}}})",
                            "for": "5m",
                            "labels": {"severity": "critical"},
                            "annotations": {
                                "summary": f"No router pod of XRouter {ns}/{name} is scraped as up."
                            },
                        },
                        {
                            "alert": "XRouterPodDown",
                            "expr": f"min(up{{{sel}}}) == 0",
                            "for": "10m",
                            "labels": {"severity": "warning"},
                            "annotations": {"summary": f"A router pod of XRouter {ns}/{name} is down."},
                        },
                    ],
                }
            ]
        },
    }
