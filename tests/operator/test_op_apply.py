"""Drift detection tolerates what the API server adds or normalises, and nothing else;
the kopf registration can never add a finalizer."""

from __future__ import annotations

from typing import Any

import kopf
from xrouter_operator import handlers
from xrouter_operator.apply import first_difference, owned_by, quantity

DESIRED: dict[str, Any] = {
    "metadata": {"name": "r", "labels": {"a": "b"}, "ownerReferences": [{"uid": "u", "controller": True}]},
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [{"name": "c", "resources": {"requests": {"cpu": "0.5", "memory": "1Gi"}}}],
                "hostNetwork": False,
                "tolerations": [],
            }
        },
    },
}


def live(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {
            "name": "r",
            "uid": "x",
            "resourceVersion": "5",
            "labels": {"a": "b", "extra": "ok"},
            "ownerReferences": [{"uid": "other", "controller": False}, {"uid": "u", "controller": True}],
        },
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 600,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "imagePullPolicy": "IfNotPresent",
                            "resources": {"requests": {"cpu": "500m", "memory": "1024Mi"}},
                        }
                    ]
                }
            },
        },
        "status": {"readyReplicas": 2},
    }
    obj["spec"].update(changes)
    return obj


def test_server_defaults_and_normalisation_are_not_drift() -> None:
    assert first_difference(DESIRED, live()) is None


def test_real_drift_is_found() -> None:
    assert first_difference(DESIRED, live(replicas=5)) == ".spec.replicas"
    changed = live()
    changed["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1"
    assert first_difference(DESIRED, changed) == ".spec.template.spec.containers[0].resources.requests.cpu"
    changed = live()
    changed["metadata"]["ownerReferences"] = []
    assert first_difference(DESIRED, changed) == ".metadata.ownerReferences"
    changed = live()
    changed["spec"]["template"]["spec"]["containers"].append({"name": "sidecar"})
    assert first_difference(DESIRED, changed) == ".spec.template.spec.containers"


def test_quantity() -> None:
    assert quantity("0.5") == quantity("500m")
    assert quantity("1Gi") == quantity("1024Mi") == quantity(2**30)
    assert quantity("25%") is None and quantity(True) is None


def test_owned_by() -> None:
    assert owned_by(live(), "u")
    assert not owned_by(live(), "other")  # not the controller
    assert not owned_by({"metadata": {}}, "u")


def test_only_event_handlers_so_kopf_never_adds_a_finalizer() -> None:
    assert handlers.WATCHED_CHILDREN
    registry = kopf.get_default_registry()
    assert registry._watching.get_all_handlers()
    assert not registry._changing.get_all_handlers()  # on.create/update/delete/resume
    assert not registry._spawning.get_all_handlers()  # timers and daemons
