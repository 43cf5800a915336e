"""spec.verticalAutoscaling: the VPA is rendered where its CRD exists, a condition says so
where it does not, and a VPA on cpu beside an HPA on cpu is refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from fakekube import FakeKube
from test_op_models import xr
from test_op_reconcile import cond, make
from xrouter_operator.render import RenderError, RenderInputs, parse, render


def kinds(spec: dict[str, Any], present: frozenset[str]) -> list[str]:
    return [m["kind"] for m in render(parse(xr(**spec)), RenderInputs(monitoring_kinds=present))]


def test_rendered_only_where_the_crd_is_installed() -> None:
    spec = {"verticalAutoscaling": {}}
    assert "VerticalPodAutoscaler" in kinds(spec, frozenset({"VerticalPodAutoscaler"}))
    assert "VerticalPodAutoscaler" not in kinds(spec, frozenset())
    assert "VerticalPodAutoscaler" not in kinds({}, frozenset({"VerticalPodAutoscaler"}))


def test_defaults_follow_upstream() -> None:
    (vpa,) = [
        m
        for m in render(
            parse(xr(verticalAutoscaling={})),
            RenderInputs(monitoring_kinds=frozenset({"VerticalPodAutoscaler"})),
        )
        if m["kind"] == "VerticalPodAutoscaler"
    ]
    assert vpa["spec"]["targetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}
    assert vpa["spec"]["updatePolicy"] == {"updateMode": "Recreate"}
    (policy,) = vpa["spec"]["resourcePolicy"]["containerPolicies"]
    assert policy == {
        "containerName": "router",
        "controlledResources": ["cpu", "memory"],
        "controlledValues": "RequestsAndLimits",
    }


@pytest.mark.parametrize(
    "vertical",
    [{}, {"controlledResources": ["cpu"]}, {"controlledResources": ["memory", "cpu"]}],
)
def test_vpa_on_cpu_with_hpa_on_cpu_refused(vertical: dict[str, Any]) -> None:
    with pytest.raises(RenderError, match=r"spec\.verticalAutoscaling\.controlledResources: .*cpu"):
        parse(xr(autoscaling={"enabled": True}, verticalAutoscaling=vertical))


def test_vpa_on_memory_with_hpa_on_cpu_accepted() -> None:
    x = parse(xr(autoscaling={"enabled": True}, verticalAutoscaling={"controlledResources": ["memory"]}))
    assert x.spec.vertical_autoscaling is not None


@pytest.mark.parametrize(
    ("vertical", "field"),
    [
        ({"updateMode": "Sometimes"}, "updateMode"),
        ({"controlledResources": ["gpu"]}, "controlledResources"),
        ({"controlledResources": []}, "controlledResources"),
    ],
)
def test_bad_values_name_the_field(vertical: dict[str, Any], field: str) -> None:
    with pytest.raises(RenderError, match=field):
        parse(xr(verticalAutoscaling=vertical))


def vpa_installed(kube: FakeKube) -> None:
    kube.monitoring = frozenset({"VerticalPodAutoscaler"})


def test_reconcile_condition_without_crd_then_vpa_once_installed() -> None:
    kube, rec = make(verticalAutoscaling={"updateMode": "Off"})
    rec.reconcile("ns", "r")
    c = cond(kube, "VerticalAutoscaling")
    assert (c["status"], c["reason"]) == ("False", "CRDNotInstalled")
    assert "not installed" in c["message"]
    assert ("VerticalPodAutoscaler", "ns", "r") not in kube.objects

    vpa_installed(kube)
    rec._monitoring = (0.0, frozenset())  # the once-a-minute discovery is due
    rec.reconcile("ns", "r")
    assert kube.objects[("VerticalPodAutoscaler", "ns", "r")]["spec"]["updatePolicy"]["updateMode"] == "Off"
    assert cond(kube, "VerticalAutoscaling")["status"] == "True"


def test_reconcile_prunes_vpa_and_drops_condition_when_field_removed() -> None:
    kube, rec = make(verticalAutoscaling={})
    vpa_installed(kube)
    rec.reconcile("ns", "r")
    assert ("VerticalPodAutoscaler", "ns", "r") in kube.objects
    xrouter = kube.objects[("XRouter", "ns", "r")]
    del xrouter["spec"]["verticalAutoscaling"]
    rec.reconcile("ns", "r")
    assert ("VerticalPodAutoscaler", "ns", "r") not in kube.objects
    types = {c["type"] for c in kube.objects[("XRouter", "ns", "r")]["status"]["conditions"]}
    assert "VerticalAutoscaling" not in types
