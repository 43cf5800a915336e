"""spec.rollout.strategy: blueGreen against the in-memory API: the new version waits behind a
preview Service, the router Service switches to it after analysis (or the annotation), the old
version is kept for the scale-down delay and then goes; a bad preview is dropped."""

from __future__ import annotations

from typing import Any

from test_op_rollout import BAD, MODEL_CHANGE, World
from xrouter_operator.analysis import Sample
from xrouter_operator.canary import REVISION_LABEL

BG = {
    "strategy": "blueGreen",
    "blueGreen": {"previewSeconds": 20, "scaleDownDelaySeconds": 30},
    "analysis": {"minRequests": 10},
}


def selector(w: World, name: str = "r") -> dict[str, str]:
    svc = w.kube.objects.get(("Service", "ns", name))
    assert svc is not None, name
    return dict(svc["spec"]["selector"])


def started(rollout: dict[str, Any] = BG) -> tuple[World, str]:
    w = World(rollout=rollout, replicas=2)
    w.reconcile()
    w.reconcile()
    old = w.rollout()["revision"]
    assert w.rollout()["phase"] == "Promoted" and selector(w)[REVISION_LABEL] == old
    w.spec(models=MODEL_CHANGE)
    w.reconcile()
    return w, old


def test_new_version_waits_behind_the_preview_service() -> None:
    w, old = started()
    new = w.rollout()["revision"]
    assert new != old and w.rollout()["phase"] == "Progressing"
    preview = w.dep("r-preview")
    assert preview is not None and preview["spec"]["replicas"] == 2
    assert selector(w)[REVISION_LABEL] == old  # every client request still goes to the old version
    assert selector(w, "r-preview")[REVISION_LABEL] == new
    assert w.cond("Progressing")["reason"] == "BlueGreenPreview"


def test_good_preview_is_switched_to_then_the_old_version_goes() -> None:
    w, _ = started()
    new = w.rollout()["revision"]
    phases = []
    for _ in range(12):
        w.seconds += 10
        w.reconcile()
        phases.append((w.rollout()["phase"], selector(w)[REVISION_LABEL]))
        if w.rollout()["phase"] == "Promoted":
            break
    assert ("Promoting", new) in phases and phases[-1] == ("Promoted", new), phases
    assert w.dep("r-preview") is None and ("Service", "ns", "r-preview") not in w.kube.objects
    dep = w.dep("r")
    assert dep is not None and dep["spec"]["template"]["metadata"]["labels"][REVISION_LABEL] == new
    reasons = [r for r, _ in w.events()]
    for r in ("BlueGreenPreview", "BlueGreenSwitched", "BlueGreenScaleDown", "RolloutPromoted"):
        assert r in reasons, reasons
    # The old pods stayed for the scale-down delay after the switch.
    switched = next(i for i, p in enumerate(phases) if p[0] == "Promoting")
    assert sum(1 for p in phases[switched:] if p[0] == "Promoting") >= 3, phases


def test_bad_preview_is_dropped_and_the_service_never_switches() -> None:
    w, old = started()
    w.canary_metrics = BAD
    w.seconds += 10
    w.reconcile()
    assert w.rollout()["phase"] == "Aborted" and selector(w)[REVISION_LABEL] == old
    assert w.dep("r-preview") is None and ("Service", "ns", "r-preview") not in w.kube.objects
    assert w.cond("Degraded")["reason"] == "RolloutAborted"


def test_without_auto_promotion_only_the_annotation_switches() -> None:
    w, _ = started({**BG, "blueGreen": {**BG["blueGreen"], "autoPromotion": False}})
    new = w.rollout()["revision"]
    for _ in range(6):
        w.seconds += 10
        w.reconcile()
    assert w.rollout()["phase"] == "Progressing" and "xrouter.io/promote" in w.rollout()["reason"]
    w.canary_metrics = Sample()
    w.annotate("xrouter.io/promote", new)
    w.reconcile()
    assert w.rollout()["phase"] == "Promoting" and selector(w)[REVISION_LABEL] == new
