"""The policy half of the API: NetworkPolicy, PodDisruptionBudget, backup and monitoring."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .cron import CRON, check_cron
from .models_telemetry import Peer
from .models_workload import Resources
from .schema import DNS_LABEL, ApiModel, IntOrString, Quantity, cel

# Who may reach the router (a NetworkPolicy peer, with ipBlock for outside clients).
PeerSelector = Peer

# The namespace label the API server sets on every namespace (Kubernetes 1.21+).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
MONITORING_NAMESPACE_LABEL = "xrouter.io/monitoring"


def default_scrapers() -> list[Peer]:
    """Where a standard monitoring stack runs: the namespace ``monitoring`` (kube-prometheus,
    and the usual home of kube-prometheus-stack) or any namespace labelled
    ``xrouter.io/monitoring: "true"`` (for stacks installed elsewhere)."""
    return [
        Peer(namespace_selector={"matchLabels": {NAMESPACE_NAME_LABEL: "monitoring"}}),
        Peer(namespace_selector={"matchLabels": {MONITORING_NAMESPACE_LABEL: "true"}}),
    ]


class Egress(ApiModel):
    provider_cidrs: list[str] = Field(
        default=["0.0.0.0/0"],
        description="Where providers outside the cluster are; port from each baseUrl (default 443).",
    )
    dns_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default=[53],
        min_length=1,
        max_length=4,
        description="Ports the cluster DNS pods listen on (UDP and TCP). Some distributions serve "
        "DNS on 5353 behind the kube-dns Service's port 53 (OpenShift): add it here.",
    )


class NetworkPolicy(ApiModel):
    enabled: bool = True
    ingress_from: list[Peer] = Field(
        default=[],
        max_length=32,
        description="Who may reach the router port. Empty: every pod in the namespace, and any address "
        "(0.0.0.0/0) when spec.service.type is NodePort or LoadBalancer.",
    )
    egress: Egress = Egress()
    allow_metrics_from: list[Peer] = Field(
        default=[], max_length=32, description="Extra peers allowed to scrape metrics."
    )
    prometheus_from: list[Peer] | None = Field(
        default=None,
        max_length=32,
        description="Who scrapes the metrics while the operator creates a ServiceMonitor. Unset: the "
        "namespace named monitoring and namespaces labelled xrouter.io/monitoring=true. []: nobody "
        "beyond allowMetricsFrom.",
    )

    def scrapers(self) -> list[Peer]:
        return default_scrapers() if self.prometheus_from is None else self.prometheus_from


class PodDisruptionBudget(ApiModel):
    model_config = cel(
        (
            "!(has(self.maxUnavailable) && has(self.minAvailable))",
            "spec.podDisruptionBudget: set at most one of maxUnavailable and minAvailable",
        ),
    )

    enabled: bool = True
    max_unavailable: IntOrString | None = None
    min_available: IntOrString | None = None

    @model_validator(mode="after")
    def _check(self) -> PodDisruptionBudget:
        if self.max_unavailable is not None and self.min_available is not None:
            raise ValueError("spec.podDisruptionBudget: set at most one of maxUnavailable and minAvailable")
        return self


WHEN_DELETED_MESSAGE = (
    "spec.backup.storage.whenDeleted only applies to a new PVC (size): an existingClaim is never deleted"
)


class BackupStorage(ApiModel):
    """Either a new PVC (size, storageClassName) or an existing claim."""

    model_config = cel(
        (
            "has(self.size) != has(self.existingClaim)",
            "spec.backup.storage: set exactly one of size (a new PVC) or existingClaim",
        ),
        (
            "!has(self.existingClaim) || !has(self.storageClassName)",
            "spec.backup.storage.storageClassName only applies to a new PVC (size)",
            ".storageClassName",
        ),
        (
            "!has(self.existingClaim) || !has(self.whenDeleted)",
            WHEN_DELETED_MESSAGE,
            ".whenDeleted",
        ),
    )

    size: Quantity | None = None
    storage_class_name: str | None = None
    existing_claim: str | None = Field(default=None, pattern=DNS_LABEL.replace("-z0-9]*", "-z0-9.]*"))
    # As a StatefulSet's persistentVolumeClaimRetentionPolicy.whenDeleted. No CRD default
    # (None here): the field stays unset for existingClaim, which is never ours to delete.
    when_deleted: Literal["Retain", "Delete"] | None = Field(
        default=None,
        description="What deleting the XRouter does to the new PVC and its dumps. Retain (unset): "
        "they stay (no ownerReference); a re-created XRouter of the same name adopts the claim. "
        "Delete: garbage-collected with the XRouter.",
    )

    @model_validator(mode="after")
    def _check(self) -> BackupStorage:
        if (self.size is None) == (self.existing_claim is None):
            raise ValueError("spec.backup.storage: set exactly one of size (a new PVC) or existingClaim")
        if self.existing_claim is not None and self.storage_class_name is not None:
            raise ValueError("spec.backup.storage.storageClassName only applies to a new PVC (size)")
        if self.existing_claim is not None and self.when_deleted is not None:
            raise ValueError(WHEN_DELETED_MESSAGE)
        return self


class BackupResources(Resources):
    """Requests and limits of the pg_dump container (unset: sized for a small database)."""

    requests: dict[str, Quantity] = Field(
        default_factory=lambda: dict[str, int | str](cpu="50m", memory="64Mi")
    )
    limits: dict[str, Quantity] = Field(default_factory=lambda: dict[str, int | str](memory="512Mi"))


class Backup(ApiModel):
    """pg_dump of spec.database to a volume, on a schedule."""

    schedule: str = Field(pattern=CRON, description="Cron schedule, e.g. '0 3 * * *'.")
    retention: int = Field(default=7, ge=1, le=1000, description="How many dumps to keep.")
    storage: BackupStorage
    suspend: bool = False
    image: str = Field(default="postgres:16-alpine", min_length=1)
    resources: BackupResources = BackupResources()

    @model_validator(mode="after")
    def _check(self) -> Backup:
        check_cron(self.schedule)
        return self


class ServiceMonitorSpec(ApiModel):
    enabled: bool = True
    interval: str = Field(default="30s", pattern=r"^[0-9]+(ms|s|m|h)$")
    labels: dict[str, str] = {}


class PrometheusRuleSpec(ApiModel):
    enabled: bool = True
    labels: dict[str, str] = {}


class Monitoring(ApiModel):
    """Created only when the Prometheus operator's CRDs exist in the cluster."""

    service_monitor: ServiceMonitorSpec = ServiceMonitorSpec()
    prometheus_rule: PrometheusRuleSpec = PrometheusRuleSpec()
