"""The control plane itself: what the real API server, controllers, scheduler and kwok do."""

from __future__ import annotations

import json
from typing import Any

import pytest
from xrouter_dev.cluster import ADMIN_USER, K8S_VERSION, ZONES, ExistingCluster, LocalCluster
from xrouter_dev.waiting import eventually

Cluster = LocalCluster | ExistingCluster

pytestmark = pytest.mark.e2e


def get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def is_ready(obj: dict[str, Any]) -> bool:
    conditions = obj.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_nodes_ready_with_zones_and_pinned_version(cluster: Cluster) -> None:
    # kwok's fake nodes; the real node (tests/e2e/test_realnode_node.py) may be there too.
    nodes = get_json(cluster, "nodes")["items"]
    if isinstance(cluster, LocalCluster):
        nodes = [n for n in nodes if n["metadata"]["labels"].get("type") == "kwok"]
    ready = [n for n in nodes if is_ready(n)]
    assert ready, "no Ready node"
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    if isinstance(cluster, LocalCluster):
        assert len(ready) == len(ZONES)
        zones = sorted(n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in ready)
        assert zones == sorted(ZONES)
        for n in ready:
            assert n["metadata"]["labels"]["kubernetes.io/hostname"] == n["metadata"]["name"]
            assert not n["spec"].get("taints"), "fake nodes must accept pods without tolerations"
        assert version["serverVersion"]["gitVersion"] == K8S_VERSION
        assert version["serverVersion"]["minor"] == K8S_VERSION.split(".")[1]
        assert version["clientVersion"]["gitVersion"] == K8S_VERSION


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.k8s.io/pause:3.10
"""


def test_deployment_reaches_two_ready_pods(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOYMENT)
    cluster.kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=120s")
    deploy = get_json(cluster, "-n", namespace, "deployment/web")
    assert deploy["status"]["readyReplicas"] == 2
    pods = get_json(cluster, "-n", namespace, "pods", "-l", "app=web")["items"]
    ready = [p for p in pods if is_ready(p) and p["status"]["phase"] == "Running"]
    assert len(ready) == 2
    node_names = {n["metadata"]["name"] for n in get_json(cluster, "nodes")["items"]}
    assert all(p["spec"]["nodeName"] in node_names for p in ready)
    # Deployment -> ReplicaSet -> Pod, through real ownerReferences.
    owners = {p["metadata"]["ownerReferences"][0]["kind"] for p in ready}
    assert owners == {"ReplicaSet"}


CRONJOB = """
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 1 1 *"
  jobTemplate:
    spec:
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: task
            image: registry.k8s.io/pause:3.10
"""


def test_job_from_cronjob_completes(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=CRONJOB)
    cluster.kubectl("create", "job", "-n", namespace, "manual-run", "--from=cronjob/nightly")
    cluster.kubectl("wait", "-n", namespace, "--for=condition=complete", "job/manual-run", "--timeout=120s")
    job = get_json(cluster, "-n", namespace, "job/manual-run")
    assert job["status"]["succeeded"] == 1
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert job["metadata"]["ownerReferences"][0]["name"] == "nightly"
    assert any(c["type"] == "Complete" and c["status"] == "True" for c in job["status"]["conditions"])


def test_deleting_owner_garbage_collects_owned(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "configmap", "-n", namespace, "owner", "--from-literal=a=1")
    cluster.kubectl("create", "configmap", "-n", namespace, "bystander", "--from-literal=a=1")
    owner_uid = get_json(cluster, "-n", namespace, "configmap/owner")["metadata"]["uid"]
    owned = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "owned",
            "namespace": namespace,
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}],
        },
        "data": {"b": "2"},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(owned))
    assert get_json(cluster, "-n", namespace, "configmap/owned")["metadata"]["ownerReferences"][0]["uid"] == (
        owner_uid
    )

    cluster.kubectl("delete", "-n", namespace, "configmap/owner", "--cascade=background")

    def owned_gone() -> bool:
        r = cluster.kubectl("get", "-n", namespace, "configmap/owned", check=False)
        return r.returncode != 0 and "NotFound" in r.stderr

    eventually("the garbage collector to delete configmap/owned", owned_gone, timeout=90, every=0.5)
    assert get_json(cluster, "-n", namespace, "configmap/bystander")["metadata"]["name"] == "bystander"


def test_audit_log_records_writes_by_user(cluster: Cluster, namespace: str) -> None:
    if cluster.audit_log is None:
        pytest.skip("an existing cluster: no audit log to read")
    cluster.kubectl("create", "configmap", "-n", namespace, "audited", "--from-literal=a=1")
    audit_log = cluster.audit_log

    def recorded() -> list[dict[str, Any]]:
        events = [json.loads(line) for line in audit_log.read_text().splitlines() if line.strip()]
        return [
            e
            for e in events
            if e.get("verb") == "create"
            and e.get("objectRef", {}).get("resource") == "configmaps"
            and e.get("objectRef", {}).get("name") == "audited"
            and e.get("objectRef", {}).get("namespace") == namespace
        ]

    eventually("the audit event", lambda: bool(recorded()), timeout=30)
    event = recorded()[0]
    assert event["user"]["username"] == ADMIN_USER
    assert event["level"] == "Metadata"
    # Reads are not logged.
    cluster.kubectl("get", "-n", namespace, "configmap/audited")
    text = audit_log.read_text()
    assert '"verb":"get"' not in text and '"verb":"list"' not in text
