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

from .kube import FIELD_MANAGER, Kube, KubeError

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


def hand_over_replicas(kube: Kube, m: Obj, obj: Obj | None, floor: int, writes: list[str]) -> Obj | None:
    """Keep the replica count while spec.replicas passes from us to the HPA (as the
    module docstring says). Returns the live Deployment after any writes. A Deployment created
    with autoscaling on never had our replicas: it starts at 1 and the HPA raises it
    to minReplicas (nothing served before, so nothing dips).

    A Deployment at 0 replicas starts at ``floor`` (minReplicas) instead: the HPA
    controller never scales a target that is at 0, so passing the 0 on would leave
    it there for good. minReplicas is at least 1, so 0 is never what autoscaling asks for."""
    if obj is None:
        return obj
    live = int(obj.get("spec", {}).get("replicas", floor))
    if not needs_handover(m, obj, FIELD_MANAGER):
        if live != 0:
            return obj
        # Already handed over but stuck at 0 (turned on from 0 by an older operator,
        # or scaled to 0 by hand): take the field back for the hand-over manager.
        kube.apply(replicas_only(m, floor), force=True, manager=HANDOVER_MANAGER)
        writes.append(f"started Deployment {m['metadata']['name']} at minReplicas ({floor}) for the HPA")
        return kube.get("Deployment", m["metadata"]["namespace"], m["metadata"]["name"])
    replicas = live or floor
    try:
        kube.apply(replicas_only(m, replicas), force=live == 0, manager=HANDOVER_MANAGER)
    except KubeError as e:
        if e.status != 409:  # a conflict: the HPA already owns the field, nothing to keep
            raise
    # Now drop the field from our apply; the hand-over manager keeps its value.
    out = kube.apply(m, force=True)
    writes.append(f"handed Deployment {m['metadata']['name']} replicas ({replicas}) over to the HPA")
    return out
