"""End-to-end fixtures: a real Kubernetes API server.

`cluster` (session): a LocalCluster built by `make tools`, or, when XROUTER_TEST_KUBECONFIG names a
kubeconfig, that existing cluster (then `audit_log` is None). Either way it has `.kubeconfig`,
`.kubectl(*args, input=None, check=True)`, `.audit_log` and `.server_url`.
`namespace` (function): a fresh namespace, deleted after the test.

Every test collected under tests/e2e is marked `e2e`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from xrouter_dev.cluster import ExistingCluster, LocalCluster

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
