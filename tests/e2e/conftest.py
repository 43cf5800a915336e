"""End-to-end fixtures: a real Kubernetes API server.

`cluster` (session): a LocalCluster built by `make tools`, or, when XROUTER_TEST_KUBECONFIG names a
kubeconfig, that existing cluster (then `audit_log` is None). Either way it has `.kubeconfig`,
`.kubectl(*args, input=None, check=True)`, `.audit_log` and `.server_url`.
`namespace` (function): a fresh namespace, deleted after the test.
`real_node` (function): the cluster's real node `xrouter-node` (xrouter_dev.realnode), started on first
use and kept for the session; with XROUTER_TEST_KUBECONFIG, a node labelled xrouter.io/real-node=true
must exist. Pods opt in with nodeconfig.real_node_pod_placement().

Every test collected under tests/e2e is marked `e2e`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from xrouter_dev.cluster import ExistingCluster, LocalCluster
from xrouter_dev.nodeconfig import REAL_NODE_LABEL
from xrouter_dev.realnode import NodeError, RealNode

_HERE = Path(__file__).parent.resolve()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster | ExistingCluster]:
    existing = os.environ.get("XROUTER_TEST_KUBECONFIG")
    if existing:
        yield ExistingCluster(Path(existing))
        return
    local = LocalCluster()
    try:
        local.start()
    except FileNotFoundError as e:  # tools not built: say "run make tools", not a traceback
        local.stop()
        pytest.fail(str(e), pytrace=False)
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def namespace(cluster: LocalCluster | ExistingCluster) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture
def real_node(cluster: LocalCluster | ExistingCluster) -> RealNode | None:
    """The running real node (None on an existing cluster that has one). Fails, naming what is
    missing (make deps / make tools / root), where this machine cannot run one."""
    if isinstance(cluster, ExistingCluster):
        nodes = cluster.kubectl("get", "nodes", "-l", f"{REAL_NODE_LABEL}=true", "-o", "name").stdout
        if not nodes.strip():
            pytest.skip(f"the existing cluster has no node labelled {REAL_NODE_LABEL}=true")
        return None
    try:
        return cluster.start_real_node()
    except NodeError as e:
        pytest.fail(str(e), pytrace=False)
