"""Install with Helm into the local control plane, then see the sample XRouter Ready.

The chart's operator Deployment is created but cannot run here: kwok's pods are fake (no
containers, no image pulls). So, for the "sees Ready" part, the operator runs as a local process
with the chart's own ServiceAccount token (`kubectl create token`), which also proves that the
chart's least-privilege RBAC is enough for a full reconcile.

Each test uses its own release name (`xr-<namespace>`), so the cluster-scoped ClusterRole and
binding never collide with another test's; the CRD is shared, skipped by Helm when present.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from xrouter_dev import procs
from xrouter_dev.argocd import health
from xrouter_dev.cluster import ExistingCluster, LocalCluster, free_port, tools_bin
from xrouter_dev.waiting import eventually

Cluster = LocalCluster | ExistingCluster
REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "xrouter"
SAMPLE = REPO / "config" / "samples" / "xrouter.yaml"
CRD_NAME = "xrouters.xrouter.io"

pytestmark = pytest.mark.e2e


def helm(cluster: Cluster, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [str(tools_bin("helm")), f"--kubeconfig={cluster.kubeconfig}", *args]
    result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def condition(obj: dict[str, Any], type_: str) -> str | None:
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == type_:
            return str(c["status"])
    return None


@pytest.fixture
def release(cluster: Cluster, namespace: str) -> Iterator[str]:
    name = f"xr-{namespace.removeprefix('e2e-')}"
    yield name
    subprocess.run(
        [
            str(tools_bin("helm")),
            f"--kubeconfig={cluster.kubeconfig}",
            "uninstall",
            name,
            "--namespace",
            namespace,
            "--wait=false",
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )


def test_helm_template_is_accepted_by_the_api_server(cluster: Cluster, namespace: str, release: str) -> None:
    server_version = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"][
        "gitVersion"
    ]
    for extra in (
        [],
        [
            "--set",
            f"operator.watchNamespaces={{{namespace}}}",
            "--set",
            "metrics.serviceMonitor.enabled=false",
        ],
    ):
        # `helm template` does not ask the cluster its version; tell it (a helm built from
        # source defaults to v1.20.0, below the chart's kubeVersion).
        rendered = helm(
            cluster,
            "template",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--include-crds",
            "--kube-version",
            server_version,
            *extra,
        ).stdout
        kinds = {d["kind"] for d in yaml.safe_load_all(rendered) if d}
        assert {"CustomResourceDefinition", "Deployment", "ServiceAccount", "Service"} <= kinds
        result = cluster.kubectl(
            "apply",
            "--dry-run=server",
            "--server-side",
            "--field-manager=e2e-dry-run",
            "-n",
            namespace,
            "-f",
            "-",
            input=rendered,
        )
        assert "serverside-applied (server dry run)" in result.stdout, result.stdout


def _token_kubeconfig(cluster: Cluster, namespace: str, service_account: str, path: Path) -> Path:
    token = cluster.kubectl(
        "create", "token", service_account, "-n", namespace, "--duration=1h"
    ).stdout.strip()
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    user = f"{service_account}-token"
    config["users"] = [{"name": user, "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = user
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(params=["all-namespaces", "watch-namespaces"])
def local_operator(
    request: pytest.FixtureRequest, cluster: Cluster, namespace: str, release: str, tmp_path: Path
) -> Iterator[int]:
    """`helm install`; run the operator locally as the chart's ServiceAccount; yield its metrics port.

    all-namespaces: the default ClusterRole. watch-namespaces: operator.watchNamespaces=[namespace],
    so the namespaced rules are a Role in that namespace and only the CRD watch is cluster-wide.
    """
    values = (
        ["--set", f"operator.watchNamespaces={{{namespace}}}"] if request.param == "watch-namespaces" else []
    )
    notes = helm(cluster, "install", release, str(CHART), "--namespace", namespace, *values).stdout
    if values:
        assert get_json(cluster, "role", f"{release}-operator", "-n", namespace)["rules"]
    assert "kubectl get xrouters" in notes and "never upgraded" in notes, notes
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    deployment = get_json(cluster, "deployment", f"{release}-operator", "-n", namespace)
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    kubeconfig = _token_kubeconfig(cluster, namespace, sa, tmp_path / "operator.kubeconfig")
    metrics_port, health_port = free_port(), free_port()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    log = (tmp_path / "operator.log").open("w")
    # Only this test's namespace, so that this operator never touches other tests' XRouters.
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "xrouter-operator"),
            "run",
            "--namespace",
            namespace,
            f"--metrics-port={metrics_port}",
            f"--health-port={health_port}",
            "--log-format=plain",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        eventually(
            "the operator's /healthz",
            lambda: _http_ok(f"http://127.0.0.1:{health_port}/healthz") or proc.poll() is not None,
            timeout=30,
        )
        assert proc.poll() is None, (tmp_path / "operator.log").read_text()
        yield metrics_port
    finally:
        procs.stop(proc, timeout=20)
        log.close()
        print((tmp_path / "operator.log").read_text()[-5000:])


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def argocd_health(obj: dict[str, Any]) -> str:
    return health(obj)["status"]


def _api_writes(metrics_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("xrouter_operator_api_writes_total{")
    )


def test_helm_install_then_sample_becomes_ready(
    cluster: Cluster, namespace: str, local_operator: int
) -> None:
    cluster.kubectl("apply", "--server-side", "--field-manager=e2e", "-n", namespace, "-f", str(SAMPLE))

    def ready() -> bool:
        return condition(get_json(cluster, "xrouter", "sample", "-n", namespace), "Ready") == "True"

    eventually("XRouter sample Ready", ready, timeout=60)
    xr = get_json(cluster, "xrouter", "sample", "-n", namespace)
    assert xr["status"]["observedGeneration"] == xr["metadata"]["generation"]
    assert argocd_health(xr) == "Healthy"

    # Argo CD re-syncs by applying the same manifest again: nothing changes, nothing is written.
    time.sleep(3)  # let the first reconcile's status and child writes settle
    writes_before = _api_writes(local_operator)
    generation = xr["metadata"]["generation"]
    cluster.kubectl("apply", "--server-side", "--field-manager=e2e", "-n", namespace, "-f", str(SAMPLE))
    time.sleep(5)
    again = get_json(cluster, "xrouter", "sample", "-n", namespace)
    assert again["metadata"]["generation"] == generation
    assert _api_writes(local_operator) == writes_before, "re-applying the same sample made the operator write"

    # No child carries labels or annotations copied from the XRouter (the Argo CD tracking pitfall).
    cluster.kubectl("label", "xrouter", "sample", "-n", namespace, "argocd.argoproj.io/instance=e2e-app")
    cluster.kubectl("annotate", "xrouter", "sample", "-n", namespace, "argocd.argoproj.io/tracking-id=e2e")
    time.sleep(3)
    children = get_json(
        cluster,
        "deployments,services,configmaps,serviceaccounts",
        "-n",
        namespace,
        "-l",
        "app.kubernetes.io/managed-by",
    )["items"]
    owned = [
        c
        for c in children
        if any(r.get("uid") == again["metadata"]["uid"] for r in c["metadata"].get("ownerReferences", []))
    ]
    assert owned, "the operator created no children"
    for child in owned:
        meta = child["metadata"]
        assert "argocd.argoproj.io/instance" not in meta.get("labels", {}), meta["name"]
        assert "argocd.argoproj.io/tracking-id" not in meta.get("annotations", {}), meta["name"]
