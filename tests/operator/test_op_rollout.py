"""spec.rollout.strategy: canary, reconciled against the in-memory API with pods whose
/metrics the test decides: a bad canary is rolled back, a good one promoted step by step,
a config-only change goes through the canary, the annotations promote and abort."""

from __future__ import annotations

from typing import Any, cast

import pytest
from fakekube import FakeKube
from test_op_reconcile import xrouter
from xrouter_operator.analysis import Sample
from xrouter_operator.canary import REVISION_ANNOTATION
from xrouter_operator.kube import Kube
from xrouter_operator.reconcile import Outcome, Reconciler

STEPS = [{"weight": 25, "pauseSeconds": 30}, {"weight": 50, "pauseSeconds": 30}]
ROLLOUT = {"strategy": "canary", "canary": {"steps": STEPS}, "analysis": {"minRequests": 10}}
GOOD = Sample(100, 0, {0.05: 100, float("inf"): 100})
BAD = Sample(100, 40, {0.05: 100, float("inf"): 100})
MODEL_CHANGE = [
    {"name": "m", "targets": [{"provider": "mock", "model": "echo"}]},
    {"name": "m2", "targets": [{"provider": "mock", "model": "echo"}]},
]


class World:
    """The fake API plus what the controllers and kubelet would do: Deployments get ready
    pods at once, and each pod's /metrics says what the test sets for its track."""

    def __init__(self, rollout: dict[str, Any] = ROLLOUT, replicas: int = 4) -> None:
        self.kube = FakeKube()
        self.kube.put(xrouter(replicas=replicas, rollout=rollout))
        self.seconds = 0
        self.canary_metrics = GOOD
        self.stable_metrics = GOOD
        self.rec = Reconciler(cast(Kube, self.kube), clock=self.now, new_key=lambda: "k")
        self.rec.rollouts.scrape = self.scrape
        self.ips: dict[str, str] = {}

    def now(self) -> str:
        return f"2026-01-01T00:{self.seconds // 60:02d}:{self.seconds % 60:02d}Z"

    def scrape(self, ip: str, port: int) -> Sample | None:
        return self.canary_metrics if self.ips[ip] == "canary" else self.stable_metrics

    def settle(self) -> None:
        for key in [k for k in self.kube.objects if k[0] in ("Pod",)]:
            del self.kube.objects[key]
        n = 0
        for (kind, _, name), dep in list(self.kube.objects.items()):
            if kind != "Deployment":
                continue
            replicas = dep["spec"]["replicas"]
            dep["status"] = {
                "observedGeneration": dep["metadata"]["generation"],
                "replicas": replicas, "updatedReplicas": replicas,
                "readyReplicas": replicas, "availableReplicas": replicas,
            }  # fmt: skip
            tmpl = dep["spec"]["template"]["metadata"]
            for i in range(replicas):
                n += 1
                ip = f"10.0.0.{n}"
                self.ips[ip] = "canary" if name.endswith(("-canary", "-preview")) else "stable"
                self.kube.put({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": f"{name}-{i}", "namespace": "ns", "labels": dict(tmpl["labels"]),
                                 "annotations": dict(tmpl.get("annotations", {}))},
                    "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]},
                })  # fmt: skip

    def reconcile(self) -> Outcome:
        out = self.rec.reconcile("ns", "r")
        self.settle()
        return out

    def spec(self, **changes: Any) -> None:
        self.kube.objects[("XRouter", "ns", "r")]["spec"].update(changes)
        self.kube.objects[("XRouter", "ns", "r")]["metadata"]["generation"] += 1

    def annotate(self, key: str, value: str) -> None:
        self.kube.objects[("XRouter", "ns", "r")]["metadata"].setdefault("annotations", {})[key] = value

    def rollout(self) -> dict[str, Any]:
        return dict(self.kube.objects[("XRouter", "ns", "r")]["status"]["rollout"])

    def cond(self, type_: str) -> dict[str, Any]:
        status = self.kube.objects[("XRouter", "ns", "r")]["status"]
        return next(c for c in status["conditions"] if c["type"] == type_)

    def dep(self, name: str = "r") -> dict[str, Any] | None:
        return self.kube.objects.get(("Deployment", "ns", name))

    def config_of(self, name: str = "r") -> str:
        dep = self.dep(name)
        assert dep is not None
        vols = dep["spec"]["template"]["spec"]["volumes"]
        return str(next(v["configMap"]["name"] for v in vols if "configMap" in v))

    def events(self) -> list[tuple[str, str]]:
        return [(e["reason"], e["message"]) for e in self.kube.events]


def started() -> tuple[World, str]:
    """A stable version running, then a config-only change (a new model)."""
    w = World()
    w.reconcile()
    w.reconcile()
    assert w.rollout()["phase"] == "Promoted" and w.dep("r-canary") is None
    old_config = w.config_of()
    w.spec(models=MODEL_CHANGE)
    out = w.reconcile()
    assert out.requeue_after == 5
    return w, old_config


def test_config_only_change_runs_as_a_canary_with_its_own_config() -> None:
    w, old_config = started()
    canary = w.dep("r-canary")
    assert canary is not None and w.config_of("r") == old_config  # stable pods keep the old config
    assert w.config_of("r-canary") != old_config
    assert ("ConfigMap", "ns", w.config_of("r-canary")) in w.kube.objects
    assert canary["spec"]["replicas"] == 1  # 25 % of 4
    ro = w.rollout()
    assert (ro["phase"], ro["step"], ro["steps"]) == ("Progressing", 1, 2)
    assert ro["revision"] == canary["spec"]["template"]["metadata"]["annotations"][REVISION_ANNOTATION]
    assert w.cond("Progressing")["reason"] == "CanaryProgressing"
    assert any(r == "CanaryStarted" for r, _ in w.events())


def test_bad_canary_is_rolled_back_and_stays_back() -> None:
    w, old_config = started()
    w.canary_metrics = BAD
    w.reconcile()
    ro = w.rollout()
    assert (ro["phase"], ro["verdict"]) == ("Aborted", "Failed")
    assert "error rate 40.0%" in ro["reason"]
    assert w.dep("r-canary") is None
    dep = w.dep("r")
    assert dep is not None and dep["spec"]["replicas"] == 4 and w.config_of() == old_config
    degraded = w.cond("Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "RolloutAborted")
    assert any(r == "RolloutAborted" for r, _ in w.events())
    w.seconds += 120
    w.reconcile()
    assert w.dep("r-canary") is None and w.rollout()["phase"] == "Aborted"


def test_good_canary_is_promoted_through_every_step() -> None:
    w, old_config = started()
    seen = []
    for _ in range(20):
        w.seconds += 10
        w.reconcile()
        ro = w.rollout()
        seen.append((ro["phase"], ro.get("step"), ro.get("weight")))
        if ro["phase"] == "Promoted":
            break
    assert ("Progressing", 1, 25) in seen  # 1 canary pod beside 3 stable ones
    assert ("Progressing", 2, 50) in seen
    assert w.rollout()["phase"] == "Promoted", seen
    assert w.dep("r-canary") is None and w.config_of() != old_config
    assert ("ConfigMap", "ns", old_config) not in w.kube.objects  # no pod mounts it any more
    reasons = [r for r, _ in w.events()]
    assert reasons.count("CanaryStepPassed") == 2 and "RolloutPromoted" in reasons
    assert w.cond("Degraded")["status"] == "False"


def test_too_few_requests_is_inconclusive_not_promoted() -> None:
    w, _ = started()
    w.canary_metrics = Sample(3, 0, {0.05: 3, float("inf"): 3})
    for _ in range(5):
        w.seconds += 30
        w.reconcile()
    ro = w.rollout()
    assert (ro["phase"], ro["step"], ro["verdict"]) == ("Progressing", 1, "Inconclusive")
    assert "waiting for 10 canary requests" in ro["reason"]


@pytest.mark.parametrize(
    ("annotation", "phase"), [("xrouter.io/promote", "Promoted"), ("xrouter.io/abort", "Aborted")]
)
def test_annotations_naming_the_revision(annotation: str, phase: str) -> None:
    w, _ = started()
    w.canary_metrics = Sample(0, 0, {})
    w.annotate(annotation, "not-this-one")
    w.reconcile()
    assert w.rollout()["phase"] == "Progressing"
    w.annotate(annotation, w.rollout()["revision"])
    w.reconcile()
    w.reconcile()
    assert w.rollout()["phase"] == phase
    assert w.dep("r-canary") is None


def test_switching_back_to_rolling_update_removes_the_canary() -> None:
    w, _ = started()
    assert w.dep("r-canary") is not None
    w.spec(rollout={"strategy": "rollingUpdate"})
    w.reconcile()
    assert w.dep("r-canary") is None
    assert "rollout" not in w.kube.objects[("XRouter", "ns", "r")]["status"]


def test_steady_state_after_promotion_writes_nothing() -> None:
    w, _ = started()
    for _ in range(12):
        w.seconds += 10
        w.reconcile()
    assert w.rollout()["phase"] == "Promoted"
    n = len(w.kube.writes)
    w.seconds += 10
    out = w.reconcile()
    assert w.kube.writes[n:] == [] and out.requeue_after is None
