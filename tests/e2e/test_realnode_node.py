"""The real node: `xrouter-node` registers Ready with containerd, runs a real container, and
`make cluster-down` leaves nothing of it behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from xrouter_dev import images, nodehost
from xrouter_dev.cluster import K8S_VERSION, KWOK_NODE_ANNOTATION, ZONES, ExistingCluster, LocalCluster
from xrouter_dev.nodeconfig import (
    BRIDGE,
    NODE_NAME,
    NODE_ROOT,
    POD_CIDR,
    REAL_NODE_LABEL,
    RUN_DIR,
    real_node_pod_placement,
)
from xrouter_dev.realnode import RealNode

Cluster = LocalCluster | ExistingCluster
REPO = Path(__file__).resolve().parents[2]


def get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def is_ready(obj: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in obj.get("status", {}).get("conditions", [])
    )


def test_real_node_ready_with_containerd_beside_the_fake_nodes(
    cluster: Cluster, real_node: RealNode | None
) -> None:
    node = get_json(cluster, "node", NODE_NAME)
    info = node["status"]["nodeInfo"]
    assert is_ready(node)
    assert info["containerRuntimeVersion"].startswith("containerd://1.6"), info
    assert info["kubeletVersion"] == K8S_VERSION
    assert node["metadata"]["labels"][REAL_NODE_LABEL] == "true"
    # Only pods that ask for it land here.
    assert {"key": REAL_NODE_LABEL, "value": "true", "effect": "NoSchedule"} in node["spec"]["taints"]
    # kwok manages only nodes with its annotation, so it never fakes this one's status.
    assert KWOK_NODE_ANNOTATION not in node["metadata"].get("annotations", {})
    assert not node["spec"].get("unschedulable"), "a restarted node must be uncordoned"
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"].startswith(POD_CIDR.rsplit(".", 1)[0] + ".")
    if isinstance(cluster, LocalCluster):
        kwok = [n for n in get_json(cluster, "nodes")["items"] if n["metadata"]["name"] != NODE_NAME]
        assert len([n for n in kwok if is_ready(n)]) == len(ZONES)
        wide = cluster.kubectl("get", "nodes", "-o", "wide").stdout
        line = next(ln for ln in wide.splitlines() if ln.startswith(NODE_NAME))
        assert " Ready " in line and "containerd://" in line, wide


PAUSE_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "sleeper"},
    "spec": {
        **real_node_pod_placement(),
        "containers": [
            {"name": "pause", "image": "localhost/xrouter-pause:3.10", "imagePullPolicy": "Never"}
        ],
        "terminationGracePeriodSeconds": 1,
    },
}


def test_a_pod_runs_in_a_real_container(cluster: Cluster, real_node: RealNode | None, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(PAUSE_POD))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/sleeper", "--timeout=90s")
    pod = get_json(cluster, "-n", namespace, "pod/sleeper")
    assert pod["spec"]["nodeName"] == NODE_NAME
    status = pod["status"]["containerStatuses"][0]
    assert status["containerID"].startswith("containerd://")
    assert pod["status"]["podIP"].startswith(POD_CIDR.rsplit(".", 1)[0] + ".")
    if real_node is not None:
        cid = status["containerID"].removeprefix("containerd://")
        tasks = real_node.ctr("tasks", "ls").stdout
        assert cid in tasks and "RUNNING" in tasks.split(cid, 1)[1].splitlines()[0]


def _leftovers(state: Path, before_chains: dict[str, list[str]], before_netns: list[str]) -> dict[str, Any]:
    chains = nodehost.iptables_chains()
    new_chains = {t: sorted(set(chains[t]) - set(before_chains.get(t, []))) for t in chains}
    mounts = [ln.split()[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()]
    return {
        "bridge": Path(f"/sys/class/net/{BRIDGE}").exists(),
        "cgroups": nodehost.leftovers(state / "none")["cgroups"],
        "iptables chains": {t: c for t, c in new_chains.items() if c},
        "netns": sorted(set(nodehost.netns_names()) - set(before_netns)),
        "mounts": [m for m in mounts if m.startswith((str(state), str(NODE_ROOT), str(RUN_DIR)))],
        "state data": (state / "data").exists() or NODE_ROOT.exists() or RUN_DIR.exists(),
    }


# `make cluster` loads what `make images` built: a pod of localhost/xrouter:dev with pullPolicy Never
# runs on the node right away (before, it sat in ErrImageNeverPull until `make images` was run again).
ROUTER_IMAGE_POD = {
    **PAUSE_POD,
    "spec": {
        **PAUSE_POD["spec"],
        "containers": [
            {
                "name": "router-image",
                "image": images.ROUTER_IMAGE,
                "imagePullPolicy": "Never",
                "command": ["sleep", "3600"],
            }
        ],
    },
}


@pytest.mark.timeout(600)
def test_make_cluster_runs_our_images_and_cluster_down_removes_every_process_mount_bridge_rule_and_netns(
    cluster: Cluster, tmp_path: Path
) -> None:
    if not isinstance(cluster, LocalCluster):
        pytest.skip("needs the local launcher")
    # One real node per machine: this test's cluster needs the session's node stopped for a while.
    if cluster.real_node is not None:
        cluster.real_node.stop()
    images.build_all(only=["router"])  # `make cluster` depends on `make images`; cached: instant
    before_chains, before_netns = nodehost.iptables_chains(), nodehost.netns_names()
    state = tmp_path / "cluster"
    env = {**os.environ, "PYTHONPATH": str(REPO / "hack")}
    start = subprocess.run(
        [sys.executable, "-m", "xrouter_dev.daemon", "start", "--dir", str(state), "--real-node"],
        capture_output=True, text=True, env=env, timeout=420, check=False,
    )  # fmt: skip
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        kubeconfig = state / "kubeconfig"
        kubectl = [str(cluster.bin("kubectl")), f"--kubeconfig={kubeconfig}"]
        pod = subprocess.run(
            [*kubectl, "apply", "-f", "-"],
            input=json.dumps(ROUTER_IMAGE_POD),
            capture_output=True,
            text=True,
            check=False,
        )
        assert pod.returncode == 0, pod.stderr
        wait = subprocess.run(
            [*kubectl, "wait", "--for=condition=Ready", "pod/sleeper", "--timeout=90s"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert wait.returncode == 0, wait.stderr
        children = json.loads((state / "children.json").read_text())
        assert {"containerd", "kubelet", "kube-proxy", "kube-router", "coredns", "metrics-server"} <= set(
            children
        )
        during = _leftovers(state, before_chains, before_netns)
        assert during["bridge"] and during["netns"] and during["iptables chains"], during
    finally:
        stop = subprocess.run(
            [sys.executable, "-m", "xrouter_dev.daemon", "stop", "--dir", str(state)],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
    assert stop.returncode == 0, stop.stdout + stop.stderr
    alive = []
    for name, pid in children.items():
        try:
            os.kill(pid, 0)
            alive.append(f"{name} ({pid})")
        except ProcessLookupError:
            pass
    time.sleep(0.5)
    after = _leftovers(state, before_chains, before_netns)
    assert not alive, alive
    assert after == {
        "bridge": False,
        "cgroups": [],
        "iptables chains": {},
        "netns": [],
        "mounts": [],
        "state data": False,
    }
