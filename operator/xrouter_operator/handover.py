"""Handing ``spec.replicas`` of the Deployment over to the HorizontalPodAutoscaler.

When autoscaling is turned on, the rendered Deployment stops carrying ``replicas``. If
our server-side apply simply dropped the field while we are its only manager, the API
server would remove it and the Deployment would fall back to 1 replica until the HPA
acts. The Kubernetes docs ("Server-Side Apply: transferring ownership") describe the
fix used here: first apply a manifest holding only the current ``replicas`` under a
separate field manager, then apply ours without the field. The field keeps its value
(the hand-over manager still owns it) until the HPA controller writes it, at which point
the hand-over manager owns nothing and disappears by itself.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

HANDOVER_MANAGER = "xrouter-operator-handover"


def owns_replicas(obj: Obj, manager: str) -> bool:
    """Whether ``manager`` holds ``spec.replicas`` through server-side apply."""
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") != manager or entry.get("operation") != "Apply":
            continue
        if "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {}):
            return True
    return False


def needs_handover(desired: Obj, live: Obj | None, manager: str) -> bool:
    """A Deployment we render without replicas while we still own the live field."""
    return (
        desired.get("kind") == "Deployment"
        and "replicas" not in desired.get("spec", {})
        and live is not None
        and owns_replicas(live, manager)
    )


def replicas_only(desired: Obj, replicas: int) -> Obj:
    """The hand-over manager's whole manifest: the Deployment's identity and replicas."""
    meta = desired["metadata"]
    return {
        "apiVersion": desired["apiVersion"],
        "kind": desired["kind"],
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": replicas},
    }
