"""Every kind the operator touches, once. Watches (``handlers``), the API paths
(``kube``), the apply order (``render``), prune (``reconcile``) and the ClusterRole
(``rbac``) are all derived from :data:`KINDS`; a test fails when render produces a
kind that is not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import API_VERSION, PLURAL

MONITORING_GROUP_VERSION = "monitoring.coreos.com/v1"
VPA_GROUP_VERSION = "autoscaling.k8s.io/v1"


@dataclass(frozen=True)
class ChildKind:
    kind: str
    api_version: str
    plural: str
    why: str
    namespaced: bool = True
    # Position in the apply order; None: the operator reads this kind but never applies it.
    order: int | None = None
    # Events of our labelled objects of this kind re-queue their XRouter.
    watched: bool = False
    # Deleted when the spec no longer renders it (PVCs are not: they hold backups).
    prune: bool = False
    # Only there when this API group is served (the Prometheus operator's CRDs).
    optional: bool = False
    # Runs router or backup pods: held back while a gating kind is in conflict.
    workload: bool = False
    # A conflict on it means the pods would run with someone else's identity, key or config.
    gates: bool = False
    # Verbs beyond what order/watched/prune imply (e.g. reading an owner, posting events).
    extra_verbs: tuple[str, ...] = ()
    # (subresource, verbs, why) rules.
    subresources: tuple[tuple[str, tuple[str, ...], str], ...] = ()

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def verbs(self) -> list[str]:
        """The RBAC verbs this kind needs, in a stable order."""
        want = set(self.extra_verbs)
        if self.order is not None:
            want |= {"get", "create", "patch"}  # server-side apply creates with PATCH
        if self.watched:
            want |= {"get", "list", "watch"}
        if self.prune:
            want |= {"list", "delete"}
        order = ["get", "list", "watch", "create", "update", "patch", "delete"]
        return [v for v in order if v in want]

    def path(self, namespace: str | None, name: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        path = f"{base}/namespaces/{namespace}/{self.plural}" if self.namespaced else f"{base}/{self.plural}"
        return f"{path}/{name}" if name else path


KINDS: dict[str, ChildKind] = {
    k.kind: k
    for k in (
        ChildKind(
            "XRouter",
            API_VERSION,
            PLURAL,
            "watch and read XRouters",
            watched=True,
            subresources=(
                ("status", ("get", "patch"), "write status"),
                (
                    "finalizers",
                    ("update",),
                    "children carry blockOwnerDeletion (OwnerReferencesPermissionEnforcement); "
                    "no finalizer is set",
                ),
            ),
        ),
        ChildKind(
            "ServiceAccount",
            "v1",
            "serviceaccounts",
            "router pods' identity",
            order=1,
            watched=True,
            gates=True,
        ),
        # Not watched: list/watch on Secrets would let the operator read every credential
        # in the cluster (RBAC cannot grant by label). It reads by name only its admin-key
        # Secret and the Secrets an XRouter references; a deleted admin-key Secret is put
        # back at the next resync (the pods keep the mounted key meanwhile).
        ChildKind(
            "Secret",
            "v1",
            "secrets",
            "admin key; Secrets an XRouter references are read by name (no list/watch)",
            order=2,
            gates=True,
        ),
        ChildKind(
            "ConfigMap",
            "v1",
            "configmaps",
            "router config (a canary's versioned ones are deleted once no pod mounts them)",
            order=3,
            watched=True,
            gates=True,
            extra_verbs=("delete",),
        ),
        ChildKind(
            "Service",
            "v1",
            "services",
            "router Service (and blue-green's preview Service, deleted after the switch)",
            order=4,
            watched=True,
            extra_verbs=("delete",),
        ),
        ChildKind(
            "Deployment",
            "apps/v1",
            "deployments",
            "the router Deployment (and a canary's, deleted after promotion or rollback)",
            order=5,
            extra_verbs=("delete",),
            watched=True,
            workload=True,
        ),
        ChildKind(
            "HorizontalPodAutoscaler",
            "autoscaling/v2",
            "horizontalpodautoscalers",
            "HPA (deleted when turned off)",
            order=6,
            watched=True,
            prune=True,
        ),
        ChildKind(
            "PodDisruptionBudget",
            "policy/v1",
            "poddisruptionbudgets",
            "PDB",
            order=7,
            watched=True,
            prune=True,
        ),
        ChildKind(
            "NetworkPolicy",
            "networking.k8s.io/v1",
            "networkpolicies",
            "NetworkPolicy",
            order=8,
            watched=True,
            prune=True,
        ),
        ChildKind(
            "PersistentVolumeClaim",
            "v1",
            "persistentvolumeclaims",
            "backup volume (kept when backup is turned off: it holds the dumps)",
            order=9,
            watched=True,
        ),
        ChildKind(
            "CronJob",
            "batch/v1",
            "cronjobs",
            "backup CronJob",
            order=10,
            watched=True,
            prune=True,
            workload=True,
        ),
        ChildKind(
            "ServiceMonitor",
            MONITORING_GROUP_VERSION,
            "servicemonitors",
            "only when the Prometheus operator CRDs exist",
            order=11,
            watched=True,
            prune=True,
            optional=True,
        ),
        ChildKind(
            "PrometheusRule",
            MONITORING_GROUP_VERSION,
            "prometheusrules",
            "only when the Prometheus operator CRDs exist",
            order=12,
            watched=True,
            prune=True,
            optional=True,
        ),
        ChildKind(
            "VerticalPodAutoscaler",
            VPA_GROUP_VERSION,
            "verticalpodautoscalers",
            "only when the Vertical Pod Autoscaler CRD exists",
            order=13,
            watched=True,
            prune=True,
            optional=True,
        ),
        ChildKind("Pod", "v1", "pods", "container restarts of router pods", watched=True),
        ChildKind("Job", "batch/v1", "jobs", "backup results", watched=True),
        ChildKind("Event", "v1", "events", "events on XRouters", extra_verbs=("create",)),
        ChildKind(
            "Namespace",
            "v1",
            "namespaces",
            "kopf observes namespaces, even when given a list",
            namespaced=False,
            extra_verbs=("list", "watch"),
        ),
        ChildKind(
            "CustomResourceDefinition",
            "apiextensions.k8s.io/v1",
            "customresourcedefinitions",
            "kopf observes CRDs",
            namespaced=False,
            extra_verbs=("list", "watch"),
        ),
    )
}

APPLIED = sorted((k for k in KINDS.values() if k.order is not None), key=lambda k: k.order or 0)
# Children whose events re-queue their XRouter (found through the instance label).
WATCHED_CHILDREN = [k for k in KINDS.values() if k.watched and k.kind != "XRouter"]
PRUNABLE = [k for k in KINDS.values() if k.prune]
OPTIONAL_KINDS = frozenset(k.kind for k in KINDS.values() if k.optional)
GATING_KINDS = frozenset(k.kind for k in KINDS.values() if k.gates)
WORKLOAD_KINDS = frozenset(k.kind for k in KINDS.values() if k.workload)
XROUTER = KINDS["XRouter"]


def apply_order(kind: str) -> int:
    """Sort key for rendered manifests; KeyError for a kind missing from the table."""
    order = KINDS[kind].order
    if order is None:
        raise KeyError(f"{kind} is not an applied kind")
    return order
