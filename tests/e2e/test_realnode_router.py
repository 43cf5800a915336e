"""The whole system on real pods: the operator (its image, the chart's RBAC) reconciles the sample
XRouter into 2 real router pods from localhost/xrouter:dev, which serve the openai SDK through
their Service, from the host and from client pods using DNS; the NetworkPolicy is enforced by
kube-router; a rolling update fails no request; the HPA scales on real CPU figures."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from test_operator_e2e import _minimal_crd
from xrouter_dev import images
from xrouter_dev.argocd import health
from xrouter_dev.cluster import LocalCluster
from xrouter_dev.nodeconfig import NODE_NAME, POD_CIDR
from xrouter_dev.realnode import RealNode
from xrouter_dev.stack import (
    TEAM_KEY,
    Cluster,
    Stack,
    client_pod,
    deploy,
    deployment,
    get_json,
    remove,
    run_client,
)
from xrouter_dev.waiting import eventually, seconds_until

FIGURES: dict[str, Any] = {}
# A real object recorded mid scale-up, judged by tests/packaging/test_pkg_argocd.py.
SCALE_UP_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "status" / "healthy-hpa-scale-up.json"


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[Stack]:
    if not isinstance(cluster, LocalCluster):
        pytest.skip("deploys onto the local launcher's real node")
    node: RealNode = cluster.start_real_node()
    t0 = time.monotonic()
    node.load_images()
    FIGURES["images build (cached) + load, s"] = round(time.monotonic() - t0, 1)
    suffix = uuid.uuid4().hex[:6]
    ns, op_ns, other = f"real-{suffix}", f"real-op-{suffix}", f"real-other-{suffix}"
    for n in (ns, other):
        cluster.kubectl("create", "namespace", n)
    try:
        s = deploy(cluster, ns, op_ns, other)
        FIGURES.update({f"{k}, s": round(v, 1) for k, v in s.timings.items()})
        yield s
    finally:
        print("\nreal-node figures: " + json.dumps(FIGURES, indent=1))
        remove(cluster, op_ns, ns, other)


def host_client(stack: Stack) -> OpenAI:
    return OpenAI(base_url=f"http://{stack.service_ip()}/v1", api_key=TEAM_KEY, max_retries=0, timeout=10)


def test_sample_runs_two_real_router_pods_on_the_real_node(stack: Stack) -> None:
    pods = stack.router_pods()
    assert len(pods) == 2
    for p in pods:
        assert p["spec"]["nodeName"] == NODE_NAME
        assert p["status"]["podIP"].startswith(POD_CIDR.rsplit(".", 1)[0] + ".")
        (status,) = p["status"]["containerStatuses"]
        assert status["ready"] and status["containerID"].startswith("containerd://")
        assert status["image"].endswith("localhost/xrouter:dev") or "xrouter:dev" in status["image"]
    table = stack.cluster.kubectl("get", "xrouters", "-n", stack.namespace).stdout
    assert "2/2" in table and "True" in table, table
    operator = get_json(stack.cluster, "-n", stack.operator_namespace, "pods")["items"]
    assert [p["spec"]["nodeName"] for p in operator] == [NODE_NAME]
    assert operator[0]["spec"]["containers"][0]["image"] == "localhost/xrouter-operator:dev"
    FIGURES["sample Ready with 2 real router pods, s"] = round(stack.seconds_to_ready, 1)


def test_openai_sdk_from_the_host_through_the_service(stack: Stack) -> None:
    client = host_client(stack)
    r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi host"}])
    assert "hi host" in (r.choices[0].message.content or "")
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "stream host"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "stream host" in text


def test_client_pod_in_the_namespace_is_served_through_the_service_dns_name(stack: Stack) -> None:
    url = f"http://{stack.name}.{stack.namespace}.svc.cluster.local/v1"
    result = run_client(stack.cluster, stack.namespace, url)
    assert "error" not in result, result
    assert "hello pod" in result["chat"] and "stream pod" in result["stream"]
    FIGURES["NetworkPolicy: same-namespace client pod"] = "served"


def test_router_pods_reach_dns_redis_postgres_and_the_provider_pod(stack: Stack) -> None:
    before = int(stack.psql("SELECT count(*) FROM xrouter_usage") or 0)
    client = host_client(stack)
    for i in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"u{i}"}])
    # Provider: the fake provider pod counted the requests (it is reached by its Service's DNS name).
    provider = get_json(stack.cluster, "-n", stack.namespace, "pods", "-l", "app=fake-provider")["items"][0]
    stats = stack.cluster.kubectl(
        "exec", "-n", stack.namespace, provider["metadata"]["name"], "--",
        "python", "-c", "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9000/_stats').read().decode())",
    ).stdout  # fmt: skip
    assert sum(json.loads(stats).values()) >= 3, stats
    # PostgreSQL: every served request has its usage row.
    eventually(
        "3 new usage rows", lambda: int(stack.psql("SELECT count(*) FROM xrouter_usage")) >= before + 3, 60
    )
    # Redis: both router pods hold connections to it (CLIENT LIST names their pod IPs).
    redis = get_json(stack.cluster, "-n", stack.namespace, "pods", "-l", "app=redis")["items"][0]
    clients = stack.cluster.kubectl(
        "exec", "-n", stack.namespace, redis["metadata"]["name"], "--", "redis-cli", "CLIENT", "LIST"
    ).stdout
    for pod in stack.router_pods():
        assert f"addr={pod['status']['podIP']}:" in clients, clients
    FIGURES["NetworkPolicy: router -> DNS, Redis, PostgreSQL, provider pod"] = "reached"


def _connect_from_router(stack: Stack, host: str, port: int, pod: str | None = None) -> str:
    pod = pod or stack.router_pods()[0]["metadata"]["name"]
    code = (
        "import socket\ns=socket.socket();s.settimeout(4)\n"
        f"try:\n s.connect(({host!r},{port}));print('CONNECTED')\n"
        "except Exception as e:\n print('BLOCKED',type(e).__name__)\n"
    )
    return stack.cluster.kubectl(
        "exec", "-n", stack.namespace, pod, "--", "python", "-c", code
    ).stdout.strip()


def test_router_cannot_reach_a_port_no_rule_allows(stack: Stack) -> None:
    # A listener on 8081: reachable from an unrestricted pod, not from the router (its egress rules
    # allow 53, 6379, 5432, and the provider port 9000 only).
    stack.apply(
        *deployment(
            "listener",
            images.FAKE_PROVIDER_IMAGE,
            8081,
            command=["python", "/app/fake_provider.py"],
            args=["--host", "0.0.0.0", "--port", "8081"],
        )
    )
    stack.cluster.kubectl("rollout", "status", "-n", stack.namespace, "deploy/listener", "--timeout=120s")
    listener = stack.service_ip("listener")
    provider = stack.service_ip("fake-provider")
    assert _connect_from_router(stack, provider, 9000) == "CONNECTED"
    # The listener answers a pod no policy restricts (the fake provider's)...
    unrestricted = get_json(stack.cluster, "-n", stack.namespace, "pods", "-l", "app=fake-provider")["items"][
        0
    ]
    # The unrestricted pod reaches the listener (so the block below is the policy's doing), once
    # the new Service's path answers (the shared wait every real-pod test uses).
    stack.wait_for_service("listener", 8081, "/_stats")
    assert _connect_from_router(stack, listener, 8081, unrestricted["metadata"]["name"]) == "CONNECTED"
    # ...and not the router (kube-router rejects the packet).
    result = _connect_from_router(stack, listener, 8081)
    assert result.startswith("BLOCKED"), result
    FIGURES["NetworkPolicy: router -> port 8081 (no rule)"] = result


SCRAPE_SCRIPT = """
import sys, time, urllib.request
url = sys.argv[1]
# A new pod's address reaches the policy engine a moment after it starts: retry for 20 s.
deadline = time.monotonic() + 20
while True:
    try:
        body = urllib.request.urlopen(url, timeout=4).read().decode()
        print("RESULT scraped" if "xrouter_" in body else "RESULT no-metrics")
        break
    except Exception as e:
        if time.monotonic() > deadline:
            print("RESULT refused " + type(e).__name__)
            break
        time.sleep(1)
"""


def _scrape_from(stack: Stack, namespace: str) -> str:
    """GET the router's /metrics through its Service from a new pod in ``namespace``."""
    name = f"scrape-{uuid.uuid4().hex[:6]}"
    pod = client_pod(name, SCRAPE_SCRIPT)
    url = f"http://{stack.name}.{stack.namespace}.svc.cluster.local:8080/metrics"
    pod["spec"]["containers"][0]["args"] = ["-c", SCRAPE_SCRIPT, url]
    stack.apply(pod, namespace=namespace)
    done = ("Succeeded", "Failed")
    eventually(
        f"scrape pod {name}",
        lambda: get_json(stack.cluster, "-n", namespace, f"pod/{name}")["status"].get("phase") in done,
        90,
    )
    logs = stack.cluster.kubectl("logs", "-n", namespace, name).stdout
    return next(ln for ln in logs.splitlines() if ln.startswith("RESULT ")).removeprefix("RESULT ")


def test_prometheus_in_a_monitoring_namespace_scrapes_and_others_are_refused(stack: Stack) -> None:
    """With the Prometheus operator's CRDs the operator creates a ServiceMonitor; its
    NetworkPolicy then admits namespaces labelled xrouter.io/monitoring=true (the default)."""
    suffix = uuid.uuid4().hex[:6]
    mon, plain = f"mon-{suffix}", f"plain-{suffix}"
    created = []
    for kind, plural in {"ServiceMonitor": "servicemonitors", "PrometheusRule": "prometheusrules"}.items():
        crd = f"{plural}.monitoring.coreos.com"
        if not stack.cluster.kubectl("get", "crd", crd, "--ignore-not-found", "-o", "name").stdout.strip():
            stack.cluster.kubectl("apply", "-f", "-", input=json.dumps(_minimal_crd(kind, plural)))
            created.append(crd)
    for n in (mon, plain):
        stack.cluster.kubectl("create", "namespace", n)
    stack.cluster.kubectl("label", "namespace", mon, "xrouter.io/monitoring=true")
    try:
        poke = iter(range(10**6))

        def monitored() -> bool:
            # The operator re-reads which Prometheus kinds exist at most once a minute; an
            # annotation change makes it reconcile meanwhile.
            stack.cluster.kubectl("annotate", "-n", stack.namespace, f"xrouter/{stack.name}",
                                  f"example.com/poke={next(poke)}", "--overwrite")  # fmt: skip
            np = get_json(stack.cluster, "-n", stack.namespace, f"networkpolicy/{stack.name}")
            return "xrouter.io/monitoring" in json.dumps(np["spec"]["ingress"])

        eventually("the NetworkPolicy to admit the monitoring namespaces", monitored, 120, every=5)
        assert get_json(stack.cluster, "-n", stack.namespace, f"servicemonitor/{stack.name}")
        time.sleep(6)  # kube-router's sync period is 5 s
        assert _scrape_from(stack, mon) == "scraped"
        refused = _scrape_from(stack, plain)
        assert refused.startswith("refused"), refused
        FIGURES["NetworkPolicy: scrape from a monitoring-labelled namespace"] = "served"
        FIGURES["NetworkPolicy: scrape from an unlabelled namespace"] = refused
    finally:
        for n in (mon, plain):
            stack.cluster.kubectl("delete", "namespace", n, "--wait=false", check=False)
        for crd in created:
            stack.cluster.kubectl("delete", "crd", crd, "--wait=false", check=False)


def test_a_model_server_behind_service_port_80_is_reached_on_its_pods_port_8000(stack: Stack) -> None:
    """As vLLM behind a Service: port 80 -> targetPort 8000. The NetworkPolicy matches the pod's
    port after DNAT, so the operator admits the Service's target port, not the URL's."""
    objs = deployment(
        "vllm",
        images.FAKE_PROVIDER_IMAGE,
        8000,
        command=["python", "/app/fake_provider.py"],
        args=["--host", "0.0.0.0", "--port", "8000"],
    )
    objs[-1]["spec"]["ports"] = [{"port": 80, "targetPort": 8000, "name": "http"}]
    stack.apply(*objs)
    stack.cluster.kubectl("rollout", "status", "-n", stack.namespace, "deploy/vllm", "--timeout=120s")
    spec = get_json(stack.cluster, "-n", stack.namespace, f"xrouter/{stack.name}")["spec"]
    provider = {
        "name": "vllm",
        "type": "openai",
        "baseUrl": f"http://vllm.{stack.namespace}.svc/v1",
        "apiKeySecretRef": {"name": "provider-key", "key": "key"},
    }
    model = {"name": "in-cluster", "targets": [{"provider": "vllm", "model": "llama"}]}
    # The team key has no allowedModels: the new model is open to it.
    stack.patch({"spec": {"providers": [*spec["providers"], provider], "models": [*spec["models"], model]}})

    def answered() -> bool:
        try:
            r = host_client(stack).chat.completions.create(
                model="in-cluster", messages=[{"role": "user", "content": "hi vllm"}]
            )
        except Exception:
            return False
        return "hi vllm" in (r.choices[0].message.content or "")

    took = seconds_until("the in-cluster model server to answer through the router", answered, 240, every=3)
    np = get_json(stack.cluster, "-n", stack.namespace, f"networkpolicy/{stack.name}")
    ports = {p["port"] for rule in np["spec"]["egress"] for p in rule["ports"]}
    assert 8000 in ports and 80 not in ports, np["spec"]["egress"]
    FIGURES["NetworkPolicy: provider behind Service 80 -> pods 8000"] = f"reached after {took:.0f}s"


def test_other_namespace_refused_unless_ingress_from_names_it(stack: Stack) -> None:
    other = stack.other_namespace
    url = f"http://{stack.name}.{stack.namespace}.svc.cluster.local/v1"
    refused = run_client(stack.cluster, other, url)
    assert "error" in refused, refused
    FIGURES["NetworkPolicy: other-namespace client"] = "refused (" + refused["error"].split(":")[0] + ")"
    peers = [
        {"podSelector": {}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": other}}},
    ]
    stack.patch({"spec": {"networkPolicy": {"ingressFrom": peers}}})

    def policy_names_other() -> bool:
        np = get_json(stack.cluster, "-n", stack.namespace, f"networkpolicy/{stack.name}")
        return other in json.dumps(np["spec"]["ingress"])

    eventually("the NetworkPolicy to name the other namespace", policy_names_other, 60)
    time.sleep(6)  # kube-router's sync period is 5 s
    served = run_client(stack.cluster, other, url)
    assert "error" not in served, served
    assert "hello pod" in served["chat"]
    FIGURES["NetworkPolicy: other-namespace client named in ingressFrom"] = "served"
    # Still served in the router's own namespace (the podSelector {} peer).
    assert "error" not in run_client(stack.cluster, stack.namespace, url)


def test_rolling_update_fails_no_request(stack: Stack) -> None:
    client = host_client(stack)
    results = {"ok": 0, "failed": 0}
    errors: list[str] = []
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            try:
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "roll"}]
                )
                results["ok"] += 1
            except Exception as e:  # counted: this is what the test measures
                results["failed"] += 1
                errors.append(f"{type(e).__name__}: {e}"[:200])
            time.sleep(0.02)

    old = {p["metadata"]["name"] for p in stack.router_pods()}
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    time.sleep(2)
    stack.patch({"spec": {"pods": {"annotations": {"rollout": uuid.uuid4().hex[:8]}}}})
    t0 = time.monotonic()

    def replaced() -> bool:
        pods = stack.router_pods()
        ready = [
            p for p in pods if all(s["ready"] for s in p["status"].get("containerStatuses", [{"ready": 0}]))
        ]
        return len(pods) == 2 and len(ready) == 2 and not ({p["metadata"]["name"] for p in pods} & old)

    eventually("every router pod replaced", replaced, 240)
    took = time.monotonic() - t0
    time.sleep(3)
    stop.set()
    sender.join(15)
    FIGURES["rolling update"] = {"seconds": round(took, 1), **results}
    assert results["ok"] > 20
    assert results["failed"] == 0, errors[:5]


def _cpu_load(stack: Stack, stop: threading.Event, threads: int = 6) -> None:
    def one() -> None:
        client = host_client(stack)
        while not stop.is_set():
            try:
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 200}]
                )
            except Exception:  # load only; the HPA test asserts on replicas, not on answers
                time.sleep(0.05)

    for _ in range(threads):
        threading.Thread(target=one, daemon=True).start()


@pytest.mark.timeout(900)
def test_hpa_scales_up_under_load_and_back_down(stack: Stack) -> None:
    stack.patch(
        {
            "spec": {
                "autoscaling": {
                    "enabled": True,
                    "minReplicas": 2,
                    "maxReplicas": 4,
                    "targetCPUUtilizationPercentage": 20,
                    # Shortened so the test also sees it shrink (the default waits 300 s).
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 15}},
                }
            }
        }
    )

    def metrics_known() -> bool:
        hpa = get_json(stack.cluster, "-n", stack.namespace, f"hpa/{stack.name}")
        metrics = hpa.get("status", {}).get("currentMetrics") or []
        return any(
            m.get("resource", {}).get("current", {}).get("averageUtilization") is not None for m in metrics
        )

    eventually("the HPA to get CPU figures from metrics-server", metrics_known, 180, every=3)
    stop = threading.Event()
    _cpu_load(stack, stop)
    try:
        verdicts: list[str] = []

        def grew() -> bool:
            # The Argo CD health check on the live object at every step of the scale-up: the new
            # pods start while the others serve, which is Progressing, never NotReady.
            obj = get_json(stack.cluster, "-n", stack.namespace, f"xrouter/{stack.name}")
            obj["metadata"].pop("managedFields", None)
            st = obj.get("status", {})
            verdict = health(obj)
            verdicts.append(f"{st.get('replicaSummary')} {verdict['status']}")
            assert verdict["status"] == "Healthy", (verdict, st.get("conditions"))
            if int(st.get("replicas") or 0) > int(st.get("readyReplicas") or 0) >= 2:
                SCALE_UP_FIXTURE.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
            return int(st.get("replicas") or 0) > 2

        up = seconds_until("the Deployment to grow past minReplicas", grew, 300, every=2)
        FIGURES["Argo CD health during the scale-up"] = verdicts
        status = stack.status()
        table = stack.cluster.kubectl("get", "xrouters", "-n", stack.namespace).stdout
        assert f"/{status['replicas']}" in table, table
    finally:
        stop.set()

    def shrank() -> bool:
        return int(stack.status().get("replicas") or 0) == 2

    down = seconds_until("the Deployment to shrink back to minReplicas", shrank, 400, every=3)
    FIGURES["HPA"] = {
        "scale up, s": round(up, 1),
        "peak replicas": status["replicas"],
        "scale down, s": round(down, 1),
    }
