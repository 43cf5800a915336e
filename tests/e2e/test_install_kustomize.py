"""`kubectl apply -k config/default` installs the operator: the server accepts every object, and
the operator Deployment rolls out (kwok runs its pod as a fake; the real process is exercised by
test_install_helm.py, which runs it with the same RBAC).

config/default is cluster-wide by design (Namespace xrouter-system, ClusterRole, binding), so this
test cleans up the namespace and the binding afterwards but leaves the CRD (other tests' XRouters
live on it) and the ClusterRole (identical to config/rbac/role.yaml, which other tests apply too).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from xrouter_dev.cluster import ExistingCluster, LocalCluster

Cluster = LocalCluster | ExistingCluster
REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "config" / "default"

pytestmark = pytest.mark.e2e


def get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def _remove(cluster: Cluster) -> None:
    # Wait: the next test re-creates xrouter-system, which fails while it is still terminating.
    cluster.kubectl(
        "delete", "namespace", "xrouter-system", "--ignore-not-found", "--timeout=120s", check=False
    )
    cluster.kubectl("delete", "clusterrolebinding", "xrouter-operator", "--ignore-not-found", check=False)


@pytest.fixture
def installed(cluster: Cluster) -> Iterator[None]:
    _remove(cluster)
    yield
    _remove(cluster)


def test_kustomize_default_server_dry_run(cluster: Cluster, installed: None) -> None:
    # A dry run creates nothing, so the Namespace it would create isn't there for the objects in it.
    cluster.kubectl("create", "namespace", "xrouter-system")
    out = cluster.kubectl(
        "apply", "--dry-run=server", "--server-side", "--field-manager=e2e-dry-run", "-k", str(DEFAULT)
    ).stdout
    for expected in [
        "customresourcedefinition.apiextensions.k8s.io/xrouters.xrouter.io",
        "clusterrole.rbac.authorization.k8s.io/xrouter-operator",
        "clusterrolebinding.rbac.authorization.k8s.io/xrouter-operator",
        "serviceaccount/xrouter-operator",
        "deployment.apps/xrouter-operator",
        "service/xrouter-operator-metrics",
    ]:
        assert expected in out, out


def test_kubectl_apply_k_config_default_installs(cluster: Cluster, installed: None) -> None:
    cluster.kubectl("apply", "--server-side", "--field-manager=e2e", "-k", str(DEFAULT))
    cluster.kubectl("wait", "--for=condition=Established", "crd/xrouters.xrouter.io", "--timeout=60s")
    deployment = get_json(cluster, "deployment", "xrouter-operator", "-n", "xrouter-system")
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    binding = get_json(cluster, "clusterrolebinding", "xrouter-operator")
    assert binding["subjects"][0]["namespace"] == "xrouter-system"
    # The ServiceAccount can do what the operator needs (spot checks of the bound ClusterRole).
    sa = "system:serviceaccount:xrouter-system:xrouter-operator"
    for verb, resource, extra in [
        ("watch", "xrouters.xrouter.io", []),
        ("patch", "xrouters.xrouter.io", ["--subresource=status"]),
        ("patch", "deployments.apps", []),
        ("create", "events", []),
    ]:
        argv = ["auth", "can-i", verb, resource, *extra, "--all-namespaces", f"--as={sa}"]
        result = cluster.kubectl(*argv, check=False)
        assert result.stdout.strip() == "yes", f"{sa} cannot {verb} {resource} {extra}"
    result = cluster.kubectl(
        "auth", "can-i", "delete", "secrets", "--all-namespaces", f"--as={sa}", check=False
    )
    assert result.stdout.strip() == "no", "least privilege: the operator never deletes Secrets"
    # kwok runs the pod (as a fake), so the rollout completes like it would on a real cluster.
    cluster.kubectl(
        "rollout", "status", "deployment/xrouter-operator", "-n", "xrouter-system", "--timeout=90s"
    )
