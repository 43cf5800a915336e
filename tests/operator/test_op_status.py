"""Status computed from synthetic children."""

from __future__ import annotations

from typing import Any

from xrouter_dev.argocd import health
from xrouter_operator.models import XRouterStatus
from xrouter_operator.status import Observed, Problems, backup_facts, compute_status, status_patch


def dep(
    replicas: int = 2, ready: int = 2, updated: int = 2, total: int = 2, gen: int = 1, seen: int = 1
) -> dict[str, Any]:
    return {
        "metadata": {"generation": gen},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": seen,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
        },
    }


def status(
    observed: Observed,
    old: dict[str, Any] | None = None,
    suspend: bool = False,
    min_replicas: int | None = None,
    **problems: Any,
) -> dict[str, Any]:
    return compute_status(
        generation=3,
        suspend=suspend,
        old=old,
        observed=observed,
        problems=Problems(**problems),
        endpoint="http://r.ns.svc",
        selector="a=b",
        now="2026-01-01T00:00:00Z",
        min_replicas=min_replicas,
    ).wire()


def conds(s: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in s["conditions"]}


def test_ready() -> None:
    s = status(Observed(deployment=dep()))
    assert conds(s) == {
        "Ready": ("True", "Available"),
        "Progressing": ("False", "RolloutComplete"),
        "Degraded": ("False", "AsExpected"),
    }
    assert s["observedGeneration"] == 3 and s["replicaSummary"] == "2/2" and s["readyReplicas"] == 2
    assert all(c["observedGeneration"] == 3 for c in s["conditions"])


def test_rolling_out() -> None:
    # The old pods still serve while the new one starts: Ready, and Progressing.
    s = status(Observed(deployment=dep(ready=2, updated=1, total=3)))
    assert conds(s)["Ready"] == ("True", "Available")
    assert conds(s)["Progressing"] == ("True", "RollingOut")
    s = status(Observed(deployment=dep(gen=2, seen=1)))
    assert conds(s)["Progressing"] == ("True", "RollingOut")
    assert conds(s)["Ready"] == ("True", "Available")


def test_a_scale_up_or_a_restarting_pod_is_progressing_not_not_ready() -> None:
    # The HPA asked for 3; 2 serve, 1 starts.
    s = status(Observed(deployment=dep(replicas=3, ready=2, updated=3, total=3)))
    assert conds(s)["Ready"] == ("True", "Available")
    assert conds(s)["Progressing"] == ("True", "RollingOut")
    # One of two pods restarting.
    s = status(Observed(deployment=dep(replicas=2, ready=1)))
    assert conds(s)["Ready"] == ("True", "Available") and s["replicaSummary"] == "1/2"
    # An HPA doubling 2 -> 6: what minReplicas asks for serves, the rest is growth.
    s = status(Observed(deployment=dep(replicas=6, ready=2, updated=6, total=6)), min_replicas=2)
    assert conds(s)["Ready"] == ("True", "Available")
    assert conds(s)["Degraded"] == ("False", "AsExpected")


def test_too_few_serving_pods_is_not_ready() -> None:
    s = status(Observed(deployment=dep(replicas=1, ready=0)))
    assert conds(s)["Ready"] == ("False", "NotReady")
    s = status(Observed(deployment=dep(replicas=4, ready=2)))
    assert conds(s)["Ready"] == ("False", "NotReady")
    s = status(Observed(deployment=dep(replicas=6, ready=2, updated=6, total=6)), min_replicas=4)
    assert conds(s)["Ready"] == ("False", "NotReady")


def test_argocd_stays_healthy_through_an_hpa_scale_up() -> None:
    """The Argo CD health Lua on the status recorded at each step of a scale-up 2 -> 3 -> 6."""
    old: dict[str, Any] | None = None
    steps = [(2, 2, 2), (3, 2, 3), (3, 3, 3), (6, 3, 6), (6, 5, 6), (6, 6, 6)]
    for replicas, ready, total in steps:
        old = status(
            Observed(deployment=dep(replicas=replicas, ready=ready, updated=total, total=total)),
            old=old,
            min_replicas=2,
        )
        obj = {"kind": "XRouter", "metadata": {"generation": 3}, "spec": {}, "status": old}
        assert health(obj)["status"] == "Healthy", (replicas, ready, old)


def test_missing_deployment() -> None:
    s = status(Observed())
    assert conds(s)["Ready"] == ("False", "DeploymentMissing")
    assert conds(s)["Progressing"] == ("True", "Creating")


def test_degraded_reasons() -> None:
    assert conds(status(Observed(), invalid="spec.x: bad"))["Degraded"] == ("True", "InvalidSpec")
    assert conds(status(Observed(), conflicts=["Service r"]))["Degraded"] == ("True", "OwnershipConflict")
    assert conds(status(Observed(), apply_errors=["boom"]))["Degraded"] == ("True", "ApplyFailed")
    stuck = dep(ready=1)
    stuck["status"]["conditions"] = [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    ]
    assert conds(status(Observed(deployment=stuck)))["Degraded"] == ("True", "RolloutStuck")


def test_suspended_keeps_ready_truth() -> None:
    s = status(Observed(deployment=dep()), suspend=True)
    assert conds(s)["Progressing"] == ("False", "Suspended")
    assert conds(s)["Ready"] == ("True", "Available")


def test_transition_time_kept_and_patch_only_on_change() -> None:
    first = status(Observed(deployment=dep()))
    later = compute_status(
        generation=3,
        suspend=False,
        old=first,
        observed=Observed(deployment=dep()),
        problems=Problems(),
        endpoint="http://r.ns.svc",
        selector="a=b",
        now="2026-02-02T00:00:00Z",
    ).wire()
    assert later == first
    assert status_patch(first, later) is None
    changed = status(Observed(deployment=dep(ready=1)), old=first)
    patch = status_patch(first, changed)
    assert patch is not None and patch["readyReplicas"] == 1


def test_backup_facts() -> None:
    cron: dict[str, Any] = {"status": {}}
    ok = {
        "status": {
            "completionTime": "2026-01-01T03:00:00Z",
            "conditions": [{"type": "Complete", "status": "True"}],
        }
    }
    bad = {
        "status": {
            "conditions": [{"type": "Failed", "status": "True", "lastTransitionTime": "2026-01-02T03:00:00Z"}]
        }
    }
    f = backup_facts(cron, [ok, bad])
    assert (f.last_time, f.last_result, f.last_success_time) == (
        "2026-01-02T03:00:00Z",
        "Failed",
        "2026-01-01T03:00:00Z",
    )
    assert backup_facts(None, [ok]).last_time is None
    s = status(Observed(deployment=dep(), cronjob=cron, jobs=[ok]))
    assert s["lastBackup"] == {"time": "2026-01-01T03:00:00Z", "result": "Succeeded"}


def test_scaled_to_zero_is_not_ready() -> None:
    s = status(Observed(deployment=dep(replicas=0, ready=0, updated=0, total=0)))
    assert conds(s) == {
        "Ready": ("False", "ScaledToZero"),
        "Progressing": ("False", "RolloutComplete"),
        "Degraded": ("False", "AsExpected"),
    }
    assert s["replicaSummary"] == "0/0"


def test_status_is_the_api_model() -> None:
    s = compute_status(
        generation=1,
        suspend=False,
        old=None,
        observed=Observed(deployment=dep()),
        problems=Problems(),
        endpoint="http://r.ns.svc",
        selector="a=b",
        now="2026-01-01T00:00:00Z",
    )
    assert isinstance(s, XRouterStatus)
    # What the API stores parses back through the same model (the CRD's status schema).
    assert XRouterStatus.model_validate(s.wire()) == s
