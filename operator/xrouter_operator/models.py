"""The XRouter API as pydantic models: the one source of truth.

The CRD schema (``crds/xrouter.io_xrouters.yaml``) is generated from these models by
:mod:`xrouter_operator.crd`, and the operator parses every object through them. CEL
rules that the API server enforces sit in the class bodies (``model_config = cel(...)``);
the same rules are checked by pydantic validators so that an object that slipped past
the API server (an old CRD, a dry-run render) still fails with the same message.

The spec is split by concern: routing (providers, models, keys; the router config's own
models with bounds) in ``models_routing``, the workload in ``models_workload``, policies,
backup and monitoring in ``models_policy``. This module ties them into the spec, the
status and the object, and re-exports them.

Defaults: the models carry every default, and the operator applies them in memory.
The CRD repeats a default only for scalar fields that are not inside a list (see
``crd.py``), so that a manifest kept in git stays equal to the stored object under
Argo CD's diff.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from xrouter_router.config import Price, ProviderType, Strategy, Timeouts, check_references

from .cron import check_cron
from .models_policy import (
    Backup,
    BackupS3,
    BackupStorage,
    Egress,
    Monitoring,
    NetworkPolicy,
    PeerSelector,
    PodDisruptionBudget,
    PrometheusRuleSpec,
    ServiceMonitorSpec,
)
from .models_rollout import RolloutStatus
from .models_routing import (
    OBJECT_NAME,
    Cnpg,
    Database,
    Key,
    Limits,
    Provider,
    Redis,
    RedisSentinel,
    Route,
    SecretKeyRef,
    SecretProviderClassRef,
    Target,
)
from .models_telemetry import CollectorPeer, IpBlock, Peer, Telemetry
from .models_vpa import VPA_HPA_CPU_MESSAGE, ResourceAmounts, VerticalAutoscaling
from .models_workload import (
    Autoscaling,
    Behavior,
    EnvVar,
    Image,
    LocalObjectReference,
    Pods,
    PullPolicy,
    Resources,
    Rollout,
    ScalingPolicy,
    ScalingRules,
    Service,
    Toleration,
)
from .schema import ApiModel, cel, map_list

# The variables the operator sets from spec.telemetry; a pods.env entry of the same name
# would meet them in the container, where one of the two silently wins.
OTEL_ENV = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_SERVICE_NAME",
)
CANARY_HPA_MESSAGE = (
    "spec.rollout.strategy: canary and blueGreen do not combine with spec.autoscaling yet "
    "(the new version's pods are counted against spec.replicas)"
)
OTEL_ENV_MESSAGE = "spec.pods.env: OTEL_* variables set by spec.telemetry may not be set here as well"
STORE_BACKUP_MESSAGE = (
    "spec.backup: the backup Job reads the database URL from a Secret, not from spec.secretProviderClass"
)
STORE_S3_MESSAGE = (
    "spec.backup.storage.s3: the backup Job reads the bucket's credentials from a Secret, "
    "not from spec.secretProviderClass"
)

GROUP = "xrouter.io"
VERSION = "v1alpha1"
KIND = "XRouter"
PLURAL = "xrouters"
API_VERSION = f"{GROUP}/{VERSION}"

__all__ = [
    "API_VERSION", "GROUP", "KIND", "OTEL_ENV", "PLURAL", "VERSION",
    "Autoscaling", "Backup", "BackupS3", "BackupStorage", "Behavior", "Cnpg", "CollectorPeer", "Condition",
    "Database",
    "Egress", "EnvVar", "Image", "IpBlock", "Key", "LastBackup", "Limits", "LocalObjectReference",
    "Monitoring", "NetworkPolicy", "ObjectMeta", "Peer", "PeerSelector", "PodDisruptionBudget", "Pods",
    "Price", "PrometheusRuleSpec", "Provider", "ProviderType", "PullPolicy", "Redis", "RedisSentinel",
    "ResourceAmounts", "Resources", "Rollout", "Route", "ScalingPolicy", "ScalingRules", "SecretKeyRef",
    "SecretProviderClassRef",
    "Service", "ServiceMonitorSpec", "Strategy", "Target", "Telemetry", "Timeouts", "Toleration",
    "VerticalAutoscaling", "XRouter", "XRouterSpec", "XRouterStatus", "check_cron", "secret_refs",
]  # fmt: skip


class XRouterSpec(ApiModel):
    """The desired state of one router deployment."""

    model_config = cel(
        (
            "self.models.all(m, m.targets.all(t, self.providers.exists(p, p.name == t.provider)))",
            "spec.models[].targets[].provider must name a provider in spec.providers",
            ".models",
        ),
        (
            "self.models.all(m, !has(m.fallbacks) || m.fallbacks.all(f, self.models.exists(o, o.name == f)))",
            "spec.models[].fallbacks must name models in spec.models",
            ".models",
        ),
        (
            "self.models.all(m, !has(m.contextWindowFallbacks) "
            "|| m.contextWindowFallbacks.all(f, self.models.exists(o, o.name == f)))",
            "spec.models[].contextWindowFallbacks must name models in spec.models",
            ".models",
        ),
        (
            "!has(self.keys) || self.keys.all(k, !has(k.limits) || !has(k.limits.allowedModels) "
            "|| k.limits.allowedModels.all(n, self.models.exists(m, m.name == n)))",
            "spec.keys[].limits.allowedModels must name models in spec.models",
            ".keys",
        ),
        (
            "!has(self.backup) || has(self.database)",
            "spec.backup needs spec.database (the database to dump)",
            ".backup",
        ),
        (
            "!has(self.secretProviderClass) || !has(self.backup) || !has(self.database) "
            "|| !has(self.database.urlSecretRef) "
            "|| self.database.urlSecretRef.name != self.secretProviderClass.name",
            STORE_BACKUP_MESSAGE,
            ".backup",
        ),
        (
            "!has(self.secretProviderClass) || !has(self.backup) || !has(self.backup.storage.s3) "
            "|| (self.backup.storage.s3.accessKeyIdSecretRef.name != self.secretProviderClass.name "
            "&& self.backup.storage.s3.secretAccessKeySecretRef.name != self.secretProviderClass.name)",
            STORE_S3_MESSAGE,
            ".backup",
        ),
        (
            "!has(self.telemetry) || !has(self.pods) || !has(self.pods.env) "
            f"|| !self.pods.env.exists(e, e.name in {list(OTEL_ENV)})",
            OTEL_ENV_MESSAGE,
            ".pods",
        ),
        (
            "!has(self.rollout) || !has(self.rollout.strategy) || self.rollout.strategy == 'rollingUpdate' "
            "|| !has(self.autoscaling) || !has(self.autoscaling.enabled) || !self.autoscaling.enabled",
            CANARY_HPA_MESSAGE,
            ".rollout.strategy",
        ),
        (
            # An absent controlledResources means [cpu, memory]; an enabled HPA always has a CPU
            # target (the CRD defaults targetCPUUtilizationPercentage to 70).
            "!has(self.verticalAutoscaling) || (has(self.verticalAutoscaling.controlledResources) "
            "&& !('cpu' in self.verticalAutoscaling.controlledResources)) || !has(self.autoscaling) "
            "|| !has(self.autoscaling.enabled) || !self.autoscaling.enabled "
            "|| !has(self.autoscaling.targetCPUUtilizationPercentage)",
            VPA_HPA_CPU_MESSAGE,
            ".verticalAutoscaling.controlledResources",
        ),
    )

    suspend: bool = Field(default=False, description="While true the operator changes nothing.")
    replicas: int = Field(default=2, ge=0, le=1000, description="Ignored while autoscaling is enabled.")
    image: Image = Image()
    pods: Pods = Pods()
    rollout: Rollout = Rollout()
    service: Service = Service()
    providers: list[Provider] = Field(min_length=1, max_length=16, json_schema_extra=map_list("name"))
    models: list[Route] = Field(min_length=1, max_length=64, json_schema_extra=map_list("name"))
    keys: list[Key] = Field(default=[], max_length=200, json_schema_extra=map_list("name"))
    default_limits: Limits = Limits()
    prices: dict[str, Price] = Field(default={}, description="Keyed by upstream model name.")
    redis: Redis | None = None
    database: Database | None = None
    autoscaling: Autoscaling = Autoscaling()
    vertical_autoscaling: VerticalAutoscaling | None = None
    network_policy: NetworkPolicy = NetworkPolicy()
    pod_disruption_budget: PodDisruptionBudget = PodDisruptionBudget()
    backup: Backup | None = None
    monitoring: Monitoring = Monitoring()
    telemetry: Telemetry | None = None
    secret_provider_class: SecretProviderClassRef | None = Field(
        default=None,
        description="Mounted into the router pods; a secretKeyRef whose name is this one's reads the "
        "object its key names from there instead of from a Secret.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> XRouterSpec:
        # The router config's own checks, so both APIs refuse the same things.
        check_references(self.providers, self.models, self.keys, self.default_limits, prefix="spec.")
        if self.backup is not None and self.database is None:
            raise ValueError("spec.backup needs spec.database (the database to dump)")
        if self.telemetry is not None and any(e.name in OTEL_ENV for e in self.pods.env):
            raise ValueError(OTEL_ENV_MESSAGE)
        if self.secret_provider_class is not None:
            _check_store(self, self.secret_provider_class.name)
        if self.rollout.strategy != "rollingUpdate" and self.autoscaling.enabled:
            raise ValueError(CANARY_HPA_MESSAGE)
        va, hpa = self.vertical_autoscaling, self.autoscaling
        if va and "cpu" in va.controlled_resources and hpa.enabled and hpa.target_cpu_utilization_percentage:
            raise ValueError(VPA_HPA_CPU_MESSAGE)
        return self


def _check_store(spec: XRouterSpec, store: str) -> None:
    for path, ref in _refs(spec):
        if ref is not None and ref.name == store and not re.match(OBJECT_NAME, ref.key):
            raise ValueError(f"{path}.key: {ref.key!r} is not a file name the SecretProviderClass can mount")
    if spec.backup is not None and spec.database is not None and spec.database.secret_ref().name == store:
        raise ValueError(STORE_BACKUP_MESSAGE)
    s3 = spec.backup.storage.s3 if spec.backup is not None else None
    if s3 is not None and store in (s3.access_key_id_secret_ref.name, s3.secret_access_key_secret_ref.name):
        raise ValueError(STORE_S3_MESSAGE)


def _refs(spec: XRouterSpec) -> list[tuple[str, SecretKeyRef | None]]:

    out: list[tuple[str, SecretKeyRef | None]]
    out = [(f"spec.providers[{p.name}].apiKeySecretRef", p.api_key_secret_ref) for p in spec.providers]
    for p in spec.providers:
        path = f"spec.providers[{p.name}]"
        out.append((f"{path}.awsAccessKeyIdSecretRef", p.aws_access_key_id_secret_ref))
        out.append((f"{path}.awsSecretAccessKeySecretRef", p.aws_secret_access_key_secret_ref))
        out.append((f"{path}.googleCredentialsSecretRef", p.google_credentials_secret_ref))
    out += [(f"spec.keys[{k.name}].secretKeyRef", k.secret_key_ref) for k in spec.keys]
    if spec.redis is not None:
        out.append(("spec.redis.urlSecretRef", spec.redis.url_secret_ref))
        if spec.redis.sentinel is not None:
            out.append(("spec.redis.sentinel.passwordSecretRef", spec.redis.sentinel.password_secret_ref))
            sentinel_ref = spec.redis.sentinel.sentinel_password_secret_ref
            out.append(("spec.redis.sentinel.sentinelPasswordSecretRef", sentinel_ref))
    if spec.database is not None:
        path = "spec.database.cnpg" if spec.database.cnpg else "spec.database.urlSecretRef"
        out.append((path, spec.database.secret_ref()))
    if spec.backup is not None and spec.backup.storage.s3 is not None:
        s3 = spec.backup.storage.s3
        out.append(("spec.backup.storage.s3.accessKeyIdSecretRef", s3.access_key_id_secret_ref))
        out.append(("spec.backup.storage.s3.secretAccessKeySecretRef", s3.secret_access_key_secret_ref))
    return out


def secret_refs(spec: XRouterSpec) -> list[tuple[str, SecretKeyRef]]:
    """Every secretKeyRef in the spec naming a Secret (not spec.secretProviderClass), with
    the field path that names it."""
    store = spec.secret_provider_class.name if spec.secret_provider_class else None
    return [(path, ref) for path, ref in _refs(spec) if ref is not None and ref.name != store]


# ---------------------------------------------------------------------------- status


class Condition(ApiModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class LastBackup(ApiModel):
    time: str | None = None
    result: Literal["Succeeded", "Failed"] | None = None
    # What the backup Job reported as it ended (its termination message): the object it
    # wrote (s3://bucket/key) on success, why it failed otherwise. Written by our script,
    # never by a tool, so no credential can reach it.
    object: str | None = Field(default=None, description="The dump the last successful run wrote.")
    message: str | None = Field(default=None, description="Why the last run failed, when it did.")


class XRouterStatus(ApiModel):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default=[], json_schema_extra=map_list("type"))
    replicas: int | None = None
    ready_replicas: int | None = None
    replica_summary: str | None = Field(default=None, description="ready/desired, for kubectl get.")
    selector: str | None = None
    endpoint: str | None = None
    last_backup: LastBackup | None = None
    rollout: RolloutStatus | None = None

    def wire(self) -> dict[str, Any]:
        """The status as the API stores it (camelCase, unset fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ObjectMeta(BaseModel):
    """The metadata fields the operator reads."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 0
    annotations: dict[str, str] = {}
    labels: dict[str, str] = {}


class XRouter(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    api_version: Literal["xrouter.io/v1alpha1"] = "xrouter.io/v1alpha1"
    kind: Literal["XRouter"] = "XRouter"
    metadata: ObjectMeta
    spec: XRouterSpec
    status: XRouterStatus | None = None
