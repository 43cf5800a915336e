"""spec.verticalAutoscaling against the real API server, with the Vertical Pod Autoscaler's
CRD installed from tests/e2e/fixtures/vpa-crd.yaml (kwok fakes the pods).

Without the CRD the XRouter says so in a condition; with it the operator's VPA is accepted by
the API server under upstream's schema, follows the spec and is deleted when the field goes;
the CEL rule refuses a VPA on cpu beside an HPA on cpu, naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from test_operator_e2e import Env, sample_xr
from test_operator_e2e import crd as crd  # the XRouter CRD, a session fixture
from xrouter_dev.waiting import eventually

pytestmark = pytest.mark.e2e

VPA_CRD = Path(__file__).parent / "fixtures" / "vpa-crd.yaml"
VPA_CRD_NAME = "verticalpodautoscalers.autoscaling.k8s.io"


@pytest.fixture
def env(cluster: Any, namespace: str, crd: None, tmp_path: Path) -> Env:
    return Env(cluster, namespace, tmp_path)


def _condition(env: Env, type_: str) -> dict[str, Any]:
    return env.condition(type_) or {}


def test_vpa_condition_without_crd_then_rendered_and_pruned(env: Env, cluster: Any) -> None:
    if cluster.kubectl("get", "crd", VPA_CRD_NAME, "--ignore-not-found", "-o", "name").stdout.strip():
        pytest.skip("the cluster already has a VPA CRD that this test would delete")
    vertical = {"updateMode": "Initial", "controlledResources": ["memory"], "maxAllowed": {"memory": "1Gi"}}
    env.apply(sample_xr(verticalAutoscaling=vertical))
    op = env.start_operator()
    try:
        eventually(
            "the VerticalAutoscaling=False condition",
            lambda: _condition(env, "VerticalAutoscaling").get("reason") == "CRDNotInstalled",
            timeout=30,
        )
        assert "not installed" in _condition(env, "VerticalAutoscaling")["message"]
    finally:
        op.stop()

    cluster.kubectl("apply", "-f", str(VPA_CRD))
    try:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{VPA_CRD_NAME}", "--timeout=30s")
        op = env.start_operator()  # discovers the optional kinds at start
        try:
            eventually("the VerticalPodAutoscaler", lambda: env.get("vpa", "sample") is not None, timeout=30)
            vpa = env.get("vpa", "sample")
            assert vpa is not None
            assert vpa["spec"]["targetRef"] == {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "sample",
            }
            assert vpa["spec"]["updatePolicy"]["updateMode"] == "Initial"
            (policy,) = vpa["spec"]["resourcePolicy"]["containerPolicies"]
            assert policy["controlledResources"] == ["memory"] and policy["maxAllowed"] == {"memory": "1Gi"}
            eventually(
                "VerticalAutoscaling=True",
                lambda: _condition(env, "VerticalAutoscaling").get("status") == "True",
                timeout=30,
            )

            # A change is applied; removing the field deletes the VPA and the condition.
            env.apply(sample_xr(verticalAutoscaling={**vertical, "updateMode": "Off"}))
            eventually(
                "updateMode Off",
                lambda: (
                    (env.get("vpa", "sample") or {}).get("spec", {}).get("updatePolicy", {}).get("updateMode")
                    == "Off"
                ),
                timeout=30,
            )
            env.kubectl("patch", "xrouter", "sample", "--type=json", "-p",
                        '[{"op": "remove", "path": "/spec/verticalAutoscaling"}]')  # fmt: skip
            eventually("the VPA deleted", lambda: env.get("vpa", "sample") is None, timeout=30)
            eventually("the condition gone", lambda: not _condition(env, "VerticalAutoscaling"), timeout=30)
        finally:
            op.stop()
    finally:
        cluster.kubectl("delete", "crd", VPA_CRD_NAME, "--wait=false", check=False)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        (
            {"autoscaling": {"enabled": True}, "verticalAutoscaling": {}},
            "spec.verticalAutoscaling.controlledResources",
        ),
        (
            {"autoscaling": {"enabled": True}, "verticalAutoscaling": {"controlledResources": ["cpu"]}},
            "spec.verticalAutoscaling.controlledResources",
        ),
        ({"verticalAutoscaling": {"updateMode": "Sometimes"}}, "spec.verticalAutoscaling.updateMode"),
        ({"verticalAutoscaling": {"minAllowed": {"cpu": "lots"}}}, "spec.verticalAutoscaling.minAllowed.cpu"),
    ],
)
def test_api_server_refuses_naming_the_field(env: Env, spec: dict[str, Any], needle: str) -> None:
    r = env.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(sample_xr(**spec)), check=False
    )
    assert r.returncode != 0, "accepted"
    assert needle in r.stderr, r.stderr


def test_api_server_accepts_vpa_on_memory_beside_hpa_on_cpu(env: Env) -> None:
    spec = {"autoscaling": {"enabled": True}, "verticalAutoscaling": {"controlledResources": ["memory"]}}
    r = env.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(sample_xr(**spec)), check=False
    )
    assert r.returncode == 0, r.stderr
