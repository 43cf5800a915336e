"""Builders of the policies around the router pods: NetworkPolicy and PodDisruptionBudget.

A NetworkPolicy matches the destination pod's port after the Service's DNAT, not the port
in a URL. So for an upstream URL that names a cluster Service (``http://vllm.ml.svc/v1``:
port 80, pods on 8000) the egress rule admits the Service's target ports on its pods; the
reconcile reads those Services and hands them in as :class:`ServiceFacts` (render stays
pure). An upstream outside the cluster keeps the URL's port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .models import ProviderType, XRouter
from .models_policy import NAMESPACE_NAME_LABEL
from .models_routing import check_http_url
from .naming import HTTP_PORT, meta, selector

Manifest = dict[str, Any]
Port = int | str  # a number or a container port's name


@dataclass(frozen=True)
class ServiceFacts:
    """What the NetworkPolicy needs of a cluster Service an upstream URL names."""

    selector: Mapping[str, str]
    ports: tuple[tuple[int, Port], ...]  # (Service port, targetPort)

    def target_ports(self, port: int) -> list[Port]:
        """The target ports behind the URL's port (all of them when no Service port matches)."""
        hits = [t for p, t in self.ports if p == port] or [t for _, t in self.ports]
        return sorted(set(hits), key=str)


def service_facts(svc: Mapping[str, Any]) -> ServiceFacts | None:
    """From a live Service; None for one without a selector (its endpoints could be anywhere)."""
    spec = svc.get("spec") or {}
    sel = spec.get("selector") or {}
    if not sel or spec.get("type") == "ExternalName":
        return None
    ports = tuple((int(p["port"]), p.get("targetPort") or p["port"]) for p in spec.get("ports") or [])
    return ServiceFacts(selector=dict(sel), ports=ports) if ports else None


def cluster_service(url: str, namespace: str) -> tuple[str, str] | None:
    """(namespace, name) of the Service a URL's host would resolve to through the pod's DNS
    search path: ``name``, ``name.ns``, ``name.ns.svc`` or ``name.ns.svc.<cluster domain>``.
    A ``name.ns`` that is no Service (``openai.com``) is looked up, not found, and stays external."""
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    parts = host.split(".")
    if len(parts) == 1 and host:
        return namespace, host
    if len(parts) == 2 or (len(parts) >= 3 and parts[2] == "svc"):
        return parts[1], parts[0]
    return None


def upstream_services(xr: XRouter) -> set[tuple[str, str]]:
    """The Services the providers' baseUrls and the OTLP endpoint may name (what reconcile reads)."""
    ns = xr.metadata.namespace
    urls = [p.base_url for p in xr.spec.providers if p.base_url]
    t = xr.spec.telemetry
    if t is not None and t.collector is None:
        urls.append(t.endpoint)
    return {ref for u in urls if (ref := cluster_service(u, ns)) is not None}


def _tcp(ports: list[Port]) -> list[dict[str, Any]]:
    return [{"port": p, "protocol": "TCP"} for p in ports]


def _rule(to: list[dict[str, Any]], ports: list[Port]) -> dict[str, Any]:
    return {"to": to, "ports": _tcp(ports)} if to else {"ports": _tcp(ports)}


def _in_cluster(
    xr: XRouter, url: str, port: int, override: int | None, services: Mapping[str, ServiceFacts]
) -> dict[str, Any] | None:
    """The egress rule to the pods of the Service ``url`` names, or None if it names none we know."""
    ref = cluster_service(url, xr.metadata.namespace)
    facts = services.get(f"{ref[0]}/{ref[1]}") if ref else None
    if ref is None or facts is None:
        return None
    peer = {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: ref[0]}},
        "podSelector": {"matchLabels": dict(facts.selector)},
    }
    return _rule([peer], [override] if override else facts.target_ports(port))


def _egress(xr: XRouter, services: Mapping[str, ServiceFacts]) -> list[dict[str, Any]]:
    spec, np = xr.spec, xr.spec.network_policy
    dns = np.egress.dns_ports
    egress = [{"ports": [{"port": p, "protocol": proto} for p in dns for proto in ("UDP", "TCP")]}]
    if spec.redis is not None:
        egress.append(_rule([p.wire() for p in spec.redis.peers], list[Port](spec.redis.egress_ports())))
    db = spec.database
    if db is not None:
        to = [p.wire() for p in db.peers]
        if not to and db.cnpg is not None:  # CloudNativePG labels its instances with their Cluster
            to = [{"podSelector": {"matchLabels": {"cnpg.io/cluster": db.cnpg.cluster}}}]
        egress.append(_rule(to, [db.port]))
    t = spec.telemetry
    if t is not None:
        port = t.port()
        if t.collector is not None:
            egress.append(_rule([t.collector.wire()], [port]))
        else:
            egress.append(_in_cluster(xr, t.endpoint, port, None, services) or _rule([], [port]))
    external: set[Port] = set()
    for p in spec.providers:
        if p.type in (ProviderType.BEDROCK, ProviderType.GEMINI, ProviderType.VERTEX):
            external.add(443)  # the cloud's API and token endpoints (STS, oauth2.googleapis.com)
        # No keys in a Secret: IMDS, the EKS Pod Identity agent or the GKE metadata server, on http.
        if (p.type is ProviderType.BEDROCK and p.aws_access_key_id_secret_ref is None) or (
            p.type is ProviderType.VERTEX and p.google_credentials_secret_ref is None
        ):
            external.add(80)
        if p.base_url is None:
            continue
        port = check_http_url(p.base_url, f"spec.providers[{p.name}].baseUrl")
        rule = _in_cluster(xr, p.base_url, port, p.port, services)
        if rule is None:
            external.add(p.port or port)
        elif rule not in egress:
            egress.append(rule)
    if external:
        to = [{"ipBlock": {"cidr": c}} for c in np.egress.provider_cidrs] + [{"namespaceSelector": {}}]
        egress.append(_rule(to, sorted(external, key=str)))
    return egress


def _ingress(xr: XRouter, scraped: bool, operator_namespace: str | None) -> list[dict[str, Any]]:
    np = xr.spec.network_policy
    peers = [p.wire() for p in np.ingress_from]
    if not peers:
        peers = [{"podSelector": {}}]
        if xr.spec.service.type != "ClusterIP":
            # A NodePort or LoadBalancer Service exists to be reached from outside; its traffic
            # arrives from node or client addresses, which no pod selector matches.
            peers.append({"ipBlock": {"cidr": "0.0.0.0/0"}})
    ingress = [{"from": peers, "ports": _tcp([HTTP_PORT])}]
    metrics = [p.wire() for p in np.allow_metrics_from]
    if scraped:
        metrics += [p.wire() for p in np.scrapers() if p.wire() not in metrics]
    if operator_namespace and xr.spec.rollout.strategy != "rollingUpdate":
        # The operator's own analysis reads each pod's /metrics during a canary or blue-green.
        metrics.append({"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: operator_namespace}}})
    if metrics:
        ingress.append({"from": metrics, "ports": _tcp([HTTP_PORT])})
    return ingress


def network_policy(
    xr: XRouter,
    *,
    scraped: bool = False,
    services: Mapping[str, ServiceFacts] | None = None,
    operator_namespace: str | None = None,
) -> Manifest:
    """``scraped``: the operator creates a ServiceMonitor, so the Prometheus that reads it
    (spec.networkPolicy.prometheusFrom) is admitted. ``services``: the cluster Services the
    upstream URLs name, keyed ``namespace/name``."""
    name = xr.metadata.name
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(xr, name, "router"),
        "spec": {
            "podSelector": {"matchLabels": selector(name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": _ingress(xr, scraped, operator_namespace),
            "egress": _egress(xr, services or {}),
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
