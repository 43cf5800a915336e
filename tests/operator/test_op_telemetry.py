"""spec.telemetry: the OTEL_* env on the router container (read by the real OpenTelemetry
SDK here), and the NetworkPolicy egress to the collector."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased
from test_op_render import xr
from xrouter_operator.render import RenderInputs, parse, render
from xrouter_router.telemetry import otlp_configured

INPUTS = RenderInputs(admin_key="k")


def one(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(m for m in render(parse(obj), INPUTS) if m["kind"] == kind)


def router_env(obj: dict[str, Any]) -> dict[str, str]:
    container = one(obj, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_no_telemetry_no_otel_env() -> None:
    env = router_env(xr(pods={"env": [{"name": "LOG_LEVEL", "value": "debug"}]}))
    assert env == {"LOG_LEVEL": "debug"}
    assert not otlp_configured(env)


def test_telemetry_env_is_what_the_sdk_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    env = router_env(
        xr(
            telemetry={"endpoint": "http://otel.obs.svc:4318", "samplingRatio": 0.25, "serviceName": "gw"},
            pods={"env": [{"name": "LOG_LEVEL", "value": "debug"}]},
        )
    )
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel.obs.svc:4318"
    assert env["OTEL_SERVICE_NAME"] == "gw"
    assert env["LOG_LEVEL"] == "debug"
    assert otlp_configured(env)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sampler = TracerProvider(shutdown_on_exit=False).sampler
    # New traces sampled at the ratio; a caller's decision (traceparent) is followed.
    assert isinstance(sampler, ParentBased)
    assert sampler.get_description().startswith("ParentBased{root:TraceIdRatioBased{0.25},")


def test_service_name_left_to_the_router_when_unset() -> None:
    env = router_env(xr(telemetry={"endpoint": "https://otel.example.com"}))
    assert "OTEL_SERVICE_NAME" not in env
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "1.0"


def egress_ports(np: dict[str, Any]) -> list[tuple[list[Any] | None, int]]:
    return [(r.get("to"), p["port"]) for r in np["spec"]["egress"] for p in r["ports"]]


@pytest.mark.parametrize(
    ("endpoint", "port"),
    [("http://otel:4318", 4318), ("http://otel", 4318), ("https://otel.example.com/otlp", 443),
     ("https://otel:8443", 8443), ("http://10.0.0.5:55681/", 55681)],
)  # fmt: skip
def test_network_policy_allows_the_collector_port(endpoint: str, port: int) -> None:
    before = egress_ports(one(xr(), "NetworkPolicy"))
    after = egress_ports(one(xr(telemetry={"endpoint": endpoint}), "NetworkPolicy"))
    assert (None, port) not in before
    assert [r for r in after if r not in before] == [(None, port)]


def test_network_policy_egress_to_where_the_collector_is() -> None:
    ns = {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}
    pods = {"matchLabels": {"app": "otel-collector"}}
    np = one(
        xr(telemetry={"endpoint": "http://c.observability:4318", "collector": {"namespaceSelector": ns,
                                                                                "podSelector": pods}}),
        "NetworkPolicy",
    )  # fmt: skip
    assert ([{"namespaceSelector": ns, "podSelector": pods}], 4318) in egress_ports(np)
    np = one(
        xr(
            telemetry={
                "endpoint": "https://otel.example.com",
                "collector": {"ipBlock": {"cidr": "203.0.113.0/24"}},
            }
        ),
        "NetworkPolicy",
    )
    assert ([{"ipBlock": {"cidr": "203.0.113.0/24"}}], 443) in egress_ports(np)


def test_other_otel_env_stays_the_users() -> None:
    # Only the variables the operator sets are refused next to spec.telemetry.
    extra = {"env": [{"name": "OTEL_RESOURCE_ATTRIBUTES", "value": "team=ml"}]}
    env = router_env(xr(telemetry={"endpoint": "http://otel:4318"}, pods=extra))
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == "team=ml"
    # Without spec.telemetry, a user may configure the SDK by hand.
    own = {"env": [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://mine:4318"}]}
    assert router_env(xr(pods=own)) == {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://mine:4318"}
