"""The NetworkPolicy beside a standard monitoring stack, outside clients and in-cluster upstreams."""

from __future__ import annotations

from typing import Any

import pytest
from test_op_render import MONITORING, one, xr
from xrouter_operator.policy import ServiceFacts, cluster_service, service_facts
from xrouter_operator.render import RenderError, RenderInputs, parse, render

NS_MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
NS_LABELLED = {"namespaceSelector": {"matchLabels": {"xrouter.io/monitoring": "true"}}}
VLLM = {"name": "vllm", "type": "openai", "baseUrl": "http://vllm.ml.svc/v1"}
VLLM_MODELS = [{"name": "m", "targets": [{"provider": "vllm", "model": "llama"}]}]
VLLM_SERVICE = ServiceFacts(selector={"app": "vllm"}, ports=((80, 8000),))


def policy(inputs: RenderInputs | None = None, **spec: Any) -> dict[str, Any]:
    np: dict[str, Any] = one(render(parse(xr(**spec)), inputs or RenderInputs()), "NetworkPolicy")["spec"]
    return np


def sources(np: dict[str, Any]) -> list[dict[str, Any]]:
    return [peer for rule in np["ingress"] for peer in rule["from"]]


def egress_to(np: dict[str, Any], port: int | str) -> list[dict[str, Any]]:
    """The egress rules that admit ``port``."""
    return [r for r in np["egress"] if any(p["port"] == port for p in r["ports"])]


def test_the_prometheus_that_reads_our_service_monitor_may_scrape() -> None:
    np = policy(MONITORING)
    assert NS_MONITORING in sources(np) and NS_LABELLED in sources(np)
    scrape = next(r for r in np["ingress"] if NS_MONITORING in r["from"])
    assert scrape["ports"] == [{"port": 8080, "protocol": "TCP"}]
    # No ServiceMonitor (the Prometheus operator is not installed, or it is turned off): no rule.
    assert NS_MONITORING not in sources(policy())
    off = {"serviceMonitor": {"enabled": False}}
    assert NS_MONITORING not in sources(policy(MONITORING, monitoring=off))


def test_prometheus_from_overrides_the_default() -> None:
    mine = {
        "namespaceSelector": {"matchLabels": {"team": "obs"}},
        "podSelector": {"matchLabels": {"app": "vm"}},
    }
    np = policy(MONITORING, networkPolicy={"prometheusFrom": [mine]})
    assert mine in sources(np) and NS_MONITORING not in sources(np)
    np = policy(MONITORING, networkPolicy={"prometheusFrom": []})
    assert len(np["ingress"]) == 1  # only the router port's own rule


def test_ip_block_peers() -> None:
    block = {"ipBlock": {"cidr": "10.20.0.0/16", "except": ["10.20.9.0/24"]}}
    np = policy(
        networkPolicy={"ingressFrom": [block], "allowMetricsFrom": [{"ipBlock": {"cidr": "10.9.0.5/32"}}]}
    )
    assert sources(np) == [block, {"ipBlock": {"cidr": "10.9.0.5/32"}}]
    with pytest.raises(RenderError, match=r"spec\.networkPolicy\.ingressFrom\[0\]: .*either ipBlock or"):
        parse(xr(networkPolicy={"ingressFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}))


@pytest.mark.parametrize("type_", ["NodePort", "LoadBalancer"])
def test_node_port_and_load_balancer_traffic_is_admitted(type_: str) -> None:
    np = policy(service={"type": type_})
    assert sources(np) == [{"podSelector": {}}, {"ipBlock": {"cidr": "0.0.0.0/0"}}]
    # Given peers are the whole list: the user narrows outside access to the balancer's range.
    lb = {"ipBlock": {"cidr": "192.0.2.0/24"}}
    assert sources(policy(service={"type": type_}, networkPolicy={"ingressFrom": [lb]})) == [lb]
    assert sources(policy()) == [{"podSelector": {}}]  # ClusterIP: the namespace only


def test_a_cluster_service_is_reached_on_its_pods_port() -> None:
    inputs = RenderInputs(services={"ml/vllm": VLLM_SERVICE})
    np = policy(inputs, providers=[VLLM], models=VLLM_MODELS)
    rules = egress_to(np, 8000)
    assert rules == [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ml"}},
                    "podSelector": {"matchLabels": {"app": "vllm"}},
                }
            ],
            "ports": [{"port": 8000, "protocol": "TCP"}],
        }
    ]
    assert egress_to(np, 80) == []
    # A named targetPort is a NetworkPolicy port name (the container port of that name).
    named = ServiceFacts(selector={"app": "vllm"}, ports=((80, "http"), (9090, "metrics")))
    np = policy(RenderInputs(services={"ml/vllm": named}), providers=[VLLM], models=VLLM_MODELS)
    assert len(egress_to(np, "http")) == 1 and egress_to(np, "metrics") == []


def test_provider_port_override_and_an_unknown_service() -> None:
    # Not (yet) readable: the URL's port, as before.
    np = policy(providers=[VLLM], models=VLLM_MODELS)
    assert egress_to(np, 80) and "namespaceSelector" in egress_to(np, 80)[0]["to"][-1]
    np = policy(providers=[{**VLLM, "port": 8000}], models=VLLM_MODELS)
    assert egress_to(np, 8000) and egress_to(np, 80) == []
    inputs = RenderInputs(services={"ml/vllm": VLLM_SERVICE})
    np = policy(inputs, providers=[{**VLLM, "port": 8443}], models=VLLM_MODELS)
    assert egress_to(np, 8443)[0]["to"][0]["podSelector"] == {"matchLabels": {"app": "vllm"}}


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("http://vllm/v1", ("ns", "vllm")),
        ("http://vllm.ml/v1", ("ml", "vllm")),
        ("http://vllm.ml.svc:8000/v1", ("ml", "vllm")),
        ("http://vllm.ml.svc.cluster.local/v1", ("ml", "vllm")),
        ("https://openai.com/v1", ("com", "openai")),  # looked up; no such Service -> external
        ("https://api.openai.com/v1", None),
        ("http://10.0.0.7:8000/v1", None),
        ("http://[fd00::7]:8000/v1", None),
    ],
)
def test_which_urls_may_name_a_cluster_service(url: str, want: tuple[str, str] | None) -> None:
    assert cluster_service(url, "ns") == want


def test_service_facts_from_a_live_service() -> None:
    svc = {"spec": {"selector": {"app": "a"}, "ports": [{"port": 80, "targetPort": 8000}, {"port": 81}]}}
    assert service_facts(svc) == ServiceFacts(selector={"app": "a"}, ports=((80, 8000), (81, 81)))
    assert service_facts({"spec": {"ports": [{"port": 80}]}}) is None  # no selector: endpoints anywhere
    assert service_facts({"spec": {"type": "ExternalName", "externalName": "x.example.com"}}) is None


def test_redis_postgres_and_otlp_rules_name_their_destination() -> None:
    redis_pods = {"podSelector": {"matchLabels": {"app": "redis"}}}
    db_block = {"ipBlock": {"cidr": "10.50.0.0/24"}}
    np = policy(
        redis={"urlSecretRef": {"name": "r", "key": "url"}, "peers": [redis_pods]},
        database={"urlSecretRef": {"name": "d", "key": "url"}, "peers": [db_block]},
    )
    assert egress_to(np, 6379) == [{"to": [redis_pods], "ports": [{"port": 6379, "protocol": "TCP"}]}]
    assert egress_to(np, 5432) == [{"to": [db_block], "ports": [{"port": 5432, "protocol": "TCP"}]}]
    # Without peers the spec does not say where: any destination on the port, as before.
    np = policy(redis={"urlSecretRef": {"name": "r", "key": "url"}})
    assert egress_to(np, 6379) == [{"ports": [{"port": 6379, "protocol": "TCP"}]}]
    # The OTLP endpoint names a cluster Service: its pods, on their port.
    otel = ServiceFacts(selector={"app": "otel"}, ports=((4318, 14318),))
    np = policy(
        RenderInputs(services={"observability/otel": otel}),
        telemetry={"endpoint": "http://otel.observability:4318"},
    )
    assert egress_to(np, 14318)[0]["to"][0]["podSelector"] == {"matchLabels": {"app": "otel"}}


def test_dns_ports_are_configurable() -> None:
    dns = policy()["egress"][0]["ports"]
    assert dns == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    np = policy(networkPolicy={"egress": {"dnsPorts": [53, 5353]}})
    assert {(p["port"], p["protocol"]) for p in np["egress"][0]["ports"]} == {
        (53, "UDP"), (53, "TCP"), (5353, "UDP"), (5353, "TCP"),
    }  # fmt: skip


def test_the_operator_may_read_metrics_while_it_judges_a_rollout() -> None:
    # The canary and blue-green analysis reads each pod's /metrics from the operator's
    # own namespace: with the default policy on, that read must be admitted.
    ns_operator = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "xrouter-system"}}}
    inputs = RenderInputs(operator_namespace="xrouter-system")
    np = policy(inputs, rollout={"strategy": "canary"})
    rule = next(r for r in np["ingress"] if ns_operator in r["from"])
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert ns_operator not in sources(policy(inputs))  # a plain rolling update needs no such read
