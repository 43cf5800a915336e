"""Render behaviour beyond the golden files: properties every spec must keep."""

from __future__ import annotations

from typing import Any

import pytest
from xrouter_operator.render import RenderInputs, parse, render

MONITORING = RenderInputs(admin_key="k", monitoring_kinds=frozenset({"ServiceMonitor", "PrometheusRule"}))


def xr(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "providers": [{"name": "mock", "type": "mock"}],
        "models": [{"name": "m", "targets": [{"provider": "mock", "model": "echo"}]}],
    }
    base.update(spec)
    return {
        "apiVersion": "xrouter.io/v1alpha1",
        "kind": "XRouter",
        "metadata": {"name": "x", "namespace": "ns", "uid": "u"},
        "spec": base,
    }


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(m for m in manifests if m["kind"] == kind)


@pytest.mark.parametrize("port", [80, 443, 8080, 9090])
def test_service_monitor_scrapes_a_port_the_service_has(port: int) -> None:
    out = render(parse(xr(service={"port": port})), MONITORING)
    ports = one(out, "Service")["spec"]["ports"]
    assert len({p["port"] for p in ports}) == len(ports), ports  # the API server refuses duplicates
    scraped = {e["port"] for e in one(out, "ServiceMonitor")["spec"]["endpoints"]}
    assert scraped <= {p["name"] for p in ports}, (scraped, ports)
    http = next(p for p in ports if p["name"] == "http")
    assert http["port"] == port
