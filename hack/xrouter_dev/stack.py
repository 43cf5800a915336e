"""Deploying the whole system onto the real node, for the real-pod tests (tests/e2e/test_realnode_*)
and `make up`:
the operator as a pod (its image, the chart's RBAC, via helm), Redis, PostgreSQL and a fake provider
as pods, and an XRouter whose router pods run localhost/xrouter:dev.

Everything uses nodeconfig.real_node_pod_placement(), so it lands on `xrouter-node`, never on kwok's.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xrouter_dev import images
from xrouter_dev.cluster import ExistingCluster, LocalCluster
from xrouter_dev.nodeconfig import POD_CIDR, STORAGE_CLASS, real_node_pod_placement
from xrouter_dev.tools import tools_bin
from xrouter_dev.waiting import eventually, seconds_until, until_answers

Cluster = LocalCluster | ExistingCluster
REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "config" / "samples" / "xrouter.yaml"
CHART = REPO / "charts" / "xrouter"
TEAM_KEY = "sk-real-node-team-a"
DB_PASSWORD = "real-node-db-pw"


def get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def _placed(spec: dict[str, Any]) -> dict[str, Any]:
    return {**spec, **real_node_pod_placement()}


def deployment(
    name: str,
    image: str,
    port: int,
    *,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    command: list[str] | None = None,
    labels: dict[str, str] | None = None,
    data_dir: str | None = None,
    claim: str | None = None,
) -> list[dict[str, Any]]:
    """A one-replica Deployment and its ClusterIP Service on the real node."""
    lbl = {"app": name, **(labels or {})}
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "Never",
        "ports": [{"containerPort": port, "name": "main"}],
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 2},
    }
    if args is not None:
        container["args"] = args
    if command is not None:
        container["command"] = command
    pod: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 2}
    if data_dir is not None:
        # A PVC on the real node's hostPath PVs (kept while the pod is replaced or scaled to 0), or
        # a scratch emptyDir; both writable by the image's non-root user.
        container["volumeMounts"] = [{"name": "data", "mountPath": data_dir}]
        source = {"persistentVolumeClaim": {"claimName": claim}} if claim else {"emptyDir": {}}
        pod["volumes"] = [{"name": "data", **source}]
    out: list[dict[str, Any]] = []
    if claim:
        out.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": STORAGE_CLASS,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        )
    return [
        *out,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": lbl},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": lbl}, "spec": _placed(pod)},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {
                "selector": {"app": name},
                "ports": [{"port": port, "targetPort": port, "name": "main"}],
            },
        },
    ]


def client_pod(name: str, script: str) -> dict[str, Any]:
    """A pod that runs a Python script with the openai SDK (localhost/xrouter-client:dev) and exits."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"role": "client"}},
        "spec": _placed(
            {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "client",
                        "image": images.CLIENT_IMAGE,
                        "imagePullPolicy": "Never",
                        "args": ["-c", script],
                    }
                ],
            }
        ),
    }


CLIENT_SCRIPT = """
import json, sys, time
from openai import APIConnectionError, OpenAI
url, key = sys.argv[1], sys.argv[2]
out = {}
try:
    c = OpenAI(base_url=url, api_key=key, max_retries=0, timeout=8)
    # The Service path itself answered before this pod was made (deploy() waits for it), but this
    # new pod's own address reaches the NetworkPolicy engine's rules a moment after it starts:
    # connection errors are retried for 20 s (a refusal by policy stays an error after that).
    deadline = time.monotonic() + 20
    while True:
        try:
            r = c.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hello pod"}])
            break
        except APIConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    out["chat"] = r.choices[0].message.content
    chunks = c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "stream pod"}], stream=True)
    out["stream"] = "".join((ch.choices[0].delta.content or "") for ch in chunks if ch.choices)
except Exception as e:
    out["error"] = type(e).__name__ + ": " + str(e)[:200]
print("RESULT " + json.dumps(out))
"""


def run_client(
    cluster: Cluster, namespace: str, url: str, key: str = TEAM_KEY, timeout: float = 90
) -> dict[str, Any]:
    name = f"client-{uuid.uuid4().hex[:6]}"
    pod = client_pod(name, CLIENT_SCRIPT)
    pod["spec"]["containers"][0]["args"] = ["-c", CLIENT_SCRIPT, url, key]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))

    def done() -> bool:
        phase = get_json(cluster, "-n", namespace, f"pod/{name}")["status"].get("phase")
        return phase in ("Succeeded", "Failed")

    eventually(f"client pod {name} to finish", done, timeout, every=1)
    logs = cluster.kubectl("logs", "-n", namespace, name).stdout
    cluster.kubectl("delete", "-n", namespace, f"pod/{name}", "--wait=false", check=False)
    line = next((ln for ln in logs.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, logs
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def helm(cluster: Cluster, *args: str, check: bool = True) -> str:
    """Our helm against the cluster; with ``check``, a failure is an AssertionError with its output."""
    argv = [str(tools_bin("helm")), f"--kubeconfig={cluster.kubeconfig}", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0 or not check, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def install_operator(cluster: Cluster, namespace: str, release: str) -> None:
    """The operator as a pod from localhost/xrouter-operator:dev, with the chart's RBAC."""
    placement = real_node_pod_placement()
    helm(
        cluster, "upgrade", "--install", release, str(CHART), "--namespace", namespace, "--create-namespace",
        "--set", "image.repository=localhost/xrouter-operator", "--set", "image.tag=dev",
        "--set", "image.pullPolicy=Never", "--set", "operator.logFormat=plain",
        "--set-json", f"nodeSelector={json.dumps(placement['nodeSelector'])}",
        "--set-json", f"tolerations={json.dumps(placement['tolerations'])}",
        "--wait", "--timeout=180s",
    )  # fmt: skip


def xrouter(name: str, namespace: str, **extra: Any) -> dict[str, Any]:
    """The sample XRouter with our image, on the real node, through a fake provider pod, with Redis
    and PostgreSQL."""
    spec: dict[str, Any] = {
        "replicas": 2,
        "image": {"repository": "localhost/xrouter", "tag": "dev", "pullPolicy": "Never"},
        "pods": real_node_pod_placement(),
        "providers": [
            {
                "name": "fake",
                "type": "openai",
                "baseUrl": f"http://fake-provider.{namespace}.svc.cluster.local:9000/v1",
                "apiKeySecretRef": {"name": "provider-key", "key": "key"},
            }
        ],
        "models": [{"name": "gpt-4o-mini", "targets": [{"provider": "fake", "model": "gpt-4o-mini"}]}],
        "keys": [
            {
                "name": "team-a",
                "secretKeyRef": {"name": "xrouter-keys", "key": "team-a"},
                "limits": {"rpm": 100000, "tpm": 100000000},
            }
        ],
        "redis": {"urlSecretRef": {"name": "redis-url", "key": "url"}},
        "database": {"urlSecretRef": {"name": "db-url", "key": "url"}},
        "networkPolicy": {"enabled": True, "egress": {"providerCidrs": [POD_CIDR]}},
    }
    spec.update(extra)
    return {"apiVersion": "xrouter.io/v1alpha1", "kind": "XRouter", "metadata": {"name": name}, "spec": spec}


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}


@dataclass
class Stack:
    cluster: Cluster
    namespace: str
    operator_namespace: str
    other_namespace: str = ""
    name: str = "sample"
    seconds_to_ready: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def service_ip(self, name: str | None = None) -> str:
        return str(
            get_json(self.cluster, "-n", self.namespace, f"service/{name or self.name}")["spec"]["clusterIP"]
        )

    def wait_for_service(self, name: str | None = None, port: int = 80, path: str = "/health") -> float:
        """Every real-pod test's wait before its first request through a Service (the router's by
        default): until the path through the ClusterIP answers from here, on the node. Returns seconds."""
        url = f"http://{self.service_ip(name)}:{port}{path}"
        return until_answers(f"service/{name or self.name} (kube-proxy's rules for its endpoints)", url)

    def router_pods(self) -> list[dict[str, Any]]:
        sel = f"xrouter.io/instance={self.name},app.kubernetes.io/component=router"
        items: list[dict[str, Any]] = get_json(self.cluster, "-n", self.namespace, "pods", "-l", sel)["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def status(self) -> dict[str, Any]:
        return dict(get_json(self.cluster, "-n", self.namespace, f"xrouter/{self.name}").get("status", {}))

    def apply(self, *objs: dict[str, Any], namespace: str | None = None) -> None:
        body = {"apiVersion": "v1", "kind": "List", "items": list(objs)}
        self.cluster.kubectl("apply", "-n", namespace or self.namespace, "-f", "-", input=json.dumps(body))

    def patch(self, patch: dict[str, Any]) -> None:
        self.cluster.kubectl(
            "patch", "-n", self.namespace, f"xrouter/{self.name}", "--type=merge", "-p", json.dumps(patch)
        )

    def psql(self, sql: str, database: str = "xrouter") -> str:
        pod = get_json(self.cluster, "-n", self.namespace, "pods", "-l", "app=postgres")["items"][0]
        out = self.cluster.kubectl(
            "exec", "-n", self.namespace, pod["metadata"]["name"], "--",
            "psql", "-h", "/tmp", "-U", "postgres", "-d", database, "-At", "-c", sql,
        )  # fmt: skip
        return out.stdout.strip()


def wait_rollouts(cluster: Cluster, namespace: str, names: list[str]) -> None:
    for name in names:
        cluster.kubectl(
            "rollout", "status", "-n", namespace, f"deployment/{name}", "--timeout=180s", timeout=200
        )  # fmt: skip


def data_services(namespace: str, db_password: str = DB_PASSWORD) -> list[dict[str, Any]]:
    """Redis and PostgreSQL pods with their Services, and the Secrets holding their URLs."""
    db_url = f"postgresql://postgres:{db_password}@postgres.{namespace}.svc.cluster.local:5432/xrouter"
    return [
        secret("redis-url", {"url": f"redis://redis.{namespace}.svc.cluster.local:6379/0"}),
        secret("db-url", {"url": db_url}),
        # No password on this throwaway Redis: protected mode would refuse every client but loopback.
        *deployment(
            "redis",
            images.REDIS_IMAGE,
            6379,
            args=["--bind", "0.0.0.0", "--protected-mode", "no", "--save", ""],
        ),
        *deployment(
            "postgres",
            images.POSTGRES_IMAGE,
            5432,
            env={"POSTGRES_PASSWORD": db_password},
            data_dir="/var/lib/postgresql/data",
            claim="postgres-data",
        ),
    ]


def wait_ready(stack: Stack, replicas: int, timeout: float = 240) -> float:
    def ready() -> bool:
        st = stack.status()
        return bool(st.get("readyReplicas") == replicas and any(
            c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions", [])
        ))  # fmt: skip

    return seconds_until(f"the XRouter Ready with {replicas} real router pods", ready, timeout, every=1)


def sample_on_real_node(namespace: str) -> list[dict[str, Any]]:
    """config/samples/xrouter.yaml with our image, on the real node, with Redis and PostgreSQL."""
    objs = [o for o in yaml.safe_load_all(SAMPLE.read_text()) if o]
    for o in objs:
        if o["kind"] == "XRouter":
            o["spec"]["image"] = {"repository": "localhost/xrouter", "tag": "dev", "pullPolicy": "Never"}
            o["spec"]["pods"] = real_node_pod_placement()
            o["spec"]["redis"] = {"urlSecretRef": {"name": "redis-url", "key": "url"}}
            o["spec"]["database"] = {"urlSecretRef": {"name": "db-url", "key": "url"}}
    return objs


OPERATOR_RELEASE = "xro"


def remove(cluster: Cluster, operator_namespace: str, *namespaces: str) -> None:
    """Undo deploy(): uninstall the operator's release first (its ClusterRole and binding are
    cluster-wide, and the next stack in the same cluster installs the same release in another
    namespace), then delete the namespaces without waiting."""
    helm(cluster, "uninstall", OPERATOR_RELEASE, "--namespace", operator_namespace, "--wait",
         "--timeout=120s", check=False)  # fmt: skip
    for n in (*namespaces, operator_namespace):
        cluster.kubectl("delete", "namespace", n, "--wait=false", check=False)


def deploy(cluster: Cluster, namespace: str, operator_namespace: str, other_namespace: str = "") -> Stack:
    """The test stack: the operator, Redis, PostgreSQL and the fake provider as pods, then an XRouter
    (xrouter()) with 2 real router pods; waits until it is Ready and its Service answers."""
    stack = Stack(cluster, namespace, operator_namespace, other_namespace)
    t0 = time.monotonic()
    install_operator(cluster, operator_namespace, OPERATOR_RELEASE)
    stack.timings["operator pod Ready (helm --wait)"] = time.monotonic() - t0
    stack.apply(
        secret("xrouter-keys", {"team-a": TEAM_KEY}),
        secret("provider-key", {"key": "sk-fake-provider"}),
        *deployment("fake-provider", images.FAKE_PROVIDER_IMAGE, 9000),
        *data_services(namespace),
    )
    wait_rollouts(cluster, namespace, ["fake-provider", "redis", "postgres"])
    stack.timings["helpers Ready"] = time.monotonic() - t0
    t1 = time.monotonic()
    stack.apply(xrouter(stack.name, namespace))
    stack.seconds_to_ready = wait_ready(stack, 2)
    stack.timings["XRouter applied -> Ready (2 real pods)"] = time.monotonic() - t1
    stack.timings["Ready -> the Service path answers"] = stack.wait_for_service()
    return stack
