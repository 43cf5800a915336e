"""The policy half of the API: NetworkPolicy, PodDisruptionBudget, backup and monitoring."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .cron import CRON, check_cron
from .models_routing import SecretKeyRef
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
    "spec.backup.storage.whenDeleted only applies to a new PVC (size): an existingClaim or an s3 "
    "bucket is never deleted"
)
STORAGE_ONE_MESSAGE = "spec.backup.storage: set exactly one of size (a new PVC), existingClaim or s3"
# S3 bucket names (the rules every S3-compatible store accepts): 3-63 lowercase letters,
# digits, dots and dashes, starting and ending with a letter or digit.
S3_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
# A key prefix of plain path segments: the script builds keys by joining it with "/", and
# the characters are the ones S3 documents as safe in keys (no spaces, no shell quoting).
S3_PREFIX = r"^([A-Za-z0-9!_.*'()-]+/)*[A-Za-z0-9!_.*'()-]*$"
# scheme://host[:port] and nothing else: s3cmd takes a host, the bucket goes in the path or
# the host name (forcePathStyle), never after a path of the endpoint's own.
S3_ENDPOINT = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$"


class BackupS3(ApiModel):
    """An S3-compatible bucket the backup Job uploads each dump (and the XRouter) to."""

    bucket: str = Field(pattern=S3_BUCKET, description="The bucket (it must exist).")
    prefix: str = Field(
        default="",
        max_length=512,
        pattern=S3_PREFIX,
        description="Key prefix, e.g. 'prod/xrouter' (objects are PREFIX/xrouter-TIMESTAMP.*). "
        "Retention keeps the newest dumps under it.",
    )
    endpoint: str | None = Field(
        default=None,
        pattern=S3_ENDPOINT,
        description="https://host[:port] of an S3-compatible store; unset: AWS S3 (s3.amazonaws.com).",
    )
    region: str = Field(default="us-east-1", pattern=r"^[a-z0-9-]{1,32}$", description="Signing region.")
    force_path_style: bool = Field(
        default=False,
        description="Address the bucket in the path (endpoint/bucket/key) instead of the host name "
        "(bucket.endpoint/key); most self-hosted stores need true.",
    )
    access_key_id_secret_ref: SecretKeyRef = Field(description="Access key ID; mounted as a file.")
    secret_access_key_secret_ref: SecretKeyRef = Field(description="Secret access key; mounted as a file.")
    scratch_size: Quantity = Field(
        default="2Gi",
        description="Size limit of the emptyDir a dump is staged in before its upload "
        "(one compressed dump).",
    )

    @property
    def key_prefix(self) -> str:
        """The prefix as keys start with it: '' or 'a/b/'."""
        p = self.prefix.strip("/")
        return f"{p}/" if p else ""


def _storage_kinds(s: BackupStorage) -> int:
    return sum(x is not None for x in (s.size, s.existing_claim, s.s3))


class BackupStorage(ApiModel):
    """Where the dumps go: a new PVC (size, storageClassName), an existing claim, or an
    S3-compatible bucket (s3)."""

    model_config = cel(
        (
            "(has(self.size) ? 1 : 0) + (has(self.existingClaim) ? 1 : 0) + (has(self.s3) ? 1 : 0) == 1",
            STORAGE_ONE_MESSAGE,
        ),
        (
            "has(self.size) || !has(self.storageClassName)",
            "spec.backup.storage.storageClassName only applies to a new PVC (size)",
            ".storageClassName",
        ),
        (
            "has(self.size) || !has(self.whenDeleted)",
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
    s3: BackupS3 | None = None

    @model_validator(mode="after")
    def _check(self) -> BackupStorage:
        if _storage_kinds(self) != 1:
            raise ValueError(STORAGE_ONE_MESSAGE)
        if self.size is None and self.storage_class_name is not None:
            raise ValueError("spec.backup.storage.storageClassName only applies to a new PVC (size)")
        if self.size is None and self.when_deleted is not None:
            raise ValueError(WHEN_DELETED_MESSAGE)
        return self


class BackupResources(Resources):
    """Requests and limits of the pg_dump container (unset: sized for a small database)."""

    requests: dict[str, Quantity] = Field(
        default_factory=lambda: dict[str, int | str](cpu="50m", memory="64Mi")
    )
    limits: dict[str, Quantity] = Field(default_factory=lambda: dict[str, int | str](memory="512Mi"))


class Backup(ApiModel):
    """pg_dump of spec.database to a volume or a bucket, on a schedule."""

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
