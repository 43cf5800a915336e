"""The XRouter API as pydantic models: the one source of truth.

The CRD schema (``crds/xrouter.io_xrouters.yaml``) is generated from these models by
:mod:`xrouter_operator.crd`, and the operator parses every object through them. CEL
rules that the API server enforces live next to the fields they check (``_cel``);
the same rules are repeated as pydantic validators so that an object that slipped
past the API server (an old CRD, a dry-run render) still fails with the same message.

Defaults: the models carry every default, and the operator applies them in memory.
The CRD repeats a default only for scalar fields that are not inside a list (see
``crd.py``), so that a manifest kept in git stays equal to the stored object under
Argo CD's diff.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.alias_generators import to_camel
from xrouter_router.config import CamelModel, Price, Timeouts
from xrouter_router.config import Limits as RouterLimits

GROUP = "xrouter.io"
VERSION = "v1alpha1"
KIND = "XRouter"
PLURAL = "xrouters"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Bounds keep the CEL rules that cross lists within the API server's cost budget.
MODEL_NAME_MAX = 100
# Five cron fields (numbers, names, ranges, steps, lists) or a @macro.
_CRON_FIELD = r"[0-9A-Za-z*?,/-]+"
CRON = rf"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|{_CRON_FIELD}( +{_CRON_FIELD}){{4}})$"
QUANTITY = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$"

# A Kubernetes object the operator passes through untouched (affinity, selectors, ...).
Json = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
IntOrString = Annotated[int | str, WithJsonSchema({"x-kubernetes-int-or-string": True})]
Quantity = Annotated[int | str, WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": QUANTITY})]


def _cel(*rules: tuple[str, str] | tuple[str, str, str]) -> dict[str, Any]:
    """CEL rules as ``json_schema_extra``: (rule, message[, fieldPath])."""
    out = []
    for r in rules:
        item = {"rule": r[0], "message": r[1]}
        if len(r) == 3:
            item["fieldPath"] = r[2]
        out.append(item)
    return {"x-kubernetes-validations": out}


def _map_list(*keys: str) -> dict[str, Any]:
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


class _Model(CamelModel):
    """The router config's base: one set of wire conventions for both APIs."""


class SecretKeyRef(_Model):
    """A key in a Secret in the XRouter's namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")
    key: str = Field(min_length=1, max_length=253, description="Key in the Secret's data.")


# ---------------------------------------------------------------------------- image, pods


class PullPolicy(StrEnum):
    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class LocalObjectReference(_Model):
    name: str = Field(min_length=1)


class Image(_Model):
    repository: str = Field(default="ghcr.io/xrouter/xrouter", min_length=1)
    tag: str = Field(default="0.1.0", min_length=1, description="Image tag (or a digest with @sha256:...).")
    pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    pull_secrets: list[LocalObjectReference] = []

    @property
    def ref(self) -> str:
        sep = "" if self.tag.startswith("@") else ":"
        return f"{self.repository}{sep}{self.tag}"


class Resources(_Model):
    requests: dict[str, Quantity] = Field(
        default_factory=lambda: dict[str, int | str](cpu="100m", memory="256Mi")
    )
    limits: dict[str, Quantity] = Field(default_factory=lambda: dict[str, int | str](memory="512Mi"))


class EnvVar(_Model):
    name: str = Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    value: str | None = None
    value_from: Json | None = Field(default=None, description="As in a container's env[].valueFrom.")


class Toleration(_Model):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class Pods(_Model):
    """Settings of the router pods."""

    resources: Resources = Resources()
    annotations: dict[str, str] = Field(default={}, max_length=64)
    labels: dict[str, str] = Field(default={}, max_length=32)
    env: list[EnvVar] = []
    node_selector: dict[str, str] = {}
    tolerations: list[Toleration] = []
    affinity: Json | None = None
    priority_class_name: str | None = None
    topology_spread_constraints: list[Json] | None = Field(
        default=None,
        description="Replaces the default spread (zones, then hosts, ScheduleAnyway). "
        "An empty list turns spreading off.",
    )

    @model_validator(mode="after")
    def _no_reserved_labels(self) -> Pods:
        for k in self.labels:
            if k.startswith("app.kubernetes.io/") or k.startswith("xrouter.io/"):
                raise ValueError(f"spec.pods.labels: {k!r} is reserved for the operator")
        return self


Pods.model_config["json_schema_extra"] = _cel(
    (
        "!has(self.labels) || self.labels.all(k, !k.startsWith('app.kubernetes.io/') "
        "&& !k.startsWith('xrouter.io/'))",
        "spec.pods.labels: keys under app.kubernetes.io/ and xrouter.io/ are reserved for the operator",
        ".labels",
    ),
)


class Rollout(_Model):
    max_surge: IntOrString = "25%"
    max_unavailable: IntOrString = 0


# ---------------------------------------------------------------------------- providers, models


class ProviderType(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    AZURE_OPENAI = "azure-openai"
    OPENAI_COMPATIBLE = "openai-compatible"
    MOCK = "mock"


class Provider(_Model):
    name: str = Field(pattern=DNS_LABEL, max_length=40)
    type: ProviderType
    base_url: str | None = Field(default=None, pattern=r"^https?://", max_length=2048)
    api_version: str | None = Field(default=None, description="Required for azure-openai.")
    api_key_secret_ref: SecretKeyRef | None = None
    timeouts: Timeouts = Timeouts()
    max_retries: int = Field(default=2, ge=0, le=10)

    @model_validator(mode="after")
    def _check(self) -> Provider:
        if self.type is not ProviderType.MOCK and not self.base_url:
            raise ValueError(f"spec.providers[{self.name}].baseUrl is required for type {self.type.value}")
        if self.type is ProviderType.AZURE_OPENAI and not self.api_version:
            raise ValueError(f"spec.providers[{self.name}].apiVersion is required for azure-openai")
        return self


Provider.model_config["json_schema_extra"] = _cel(
    (
        "self.type == 'mock' || has(self.baseUrl)",
        "spec.providers[].baseUrl is required unless type is mock",
        ".baseUrl",
    ),
    (
        "self.type != 'azure-openai' || has(self.apiVersion)",
        "spec.providers[].apiVersion is required for type azure-openai",
        ".apiVersion",
    ),
)


class Strategy(StrEnum):
    WEIGHTED = "weighted"
    LEAST_INFLIGHT = "least-inflight"
    LATENCY = "latency"
    HASH = "hash"


class Target(_Model):
    provider: str = Field(min_length=1, max_length=40, description="Name of a provider in spec.providers.")
    model: str = Field(min_length=1, max_length=256, description="Upstream model (or Azure deployment).")
    weight: int = Field(default=1, ge=0, le=1_000_000)


class Route(_Model):
    """A public model name and how requests for it are routed."""

    name: str = Field(min_length=1, max_length=MODEL_NAME_MAX, description="The public model name.")
    strategy: Strategy = Strategy.WEIGHTED
    hash_key: str = Field(default="user", pattern=r"^(user|header:[A-Za-z0-9-]+)$")
    targets: list[Target] = Field(min_length=1, max_length=8)
    fallbacks: list[Annotated[str, Field(max_length=MODEL_NAME_MAX)]] = Field(
        default=[], max_length=4, description="Other public model names, tried in order."
    )


Route.model_config["json_schema_extra"] = _cel(
    (
        "self.targets.exists(t, !has(t.weight) || t.weight > 0)",
        "spec.models[].targets: at least one target needs weight > 0",
        ".targets",
    ),
    (
        "!has(self.fallbacks) || !self.fallbacks.exists(f, f == self.name)",
        "spec.models[].fallbacks must not name the model itself",
        ".fallbacks",
    ),
)


# The router's own Limits, with allowedModels bounded so that the CRD's CEL rules stay
# within the API server's cost budget.
class Limits(RouterLimits):
    """Limits for an API key. Unset means unlimited."""

    allowed_models: list[Annotated[str, Field(max_length=MODEL_NAME_MAX)]] | None = Field(
        default=None, max_length=16
    )


class Key(_Model):
    """An API key declared as code: the raw key lives in a Secret."""

    name: str = Field(pattern=DNS_LABEL, max_length=40)
    secret_key_ref: SecretKeyRef
    limits: Limits | None = Field(default=None, description="Unset: spec.defaultLimits.")


class Redis(_Model):
    url_secret_ref: SecretKeyRef
    fail_mode: Literal["open", "closed"] = "open"
    port: int = Field(default=6379, ge=1, le=65535, description="For the NetworkPolicy egress rule.")


class Database(_Model):
    url_secret_ref: SecretKeyRef = Field(description="A postgresql:// URL.")
    port: int = Field(default=5432, ge=1, le=65535, description="For the NetworkPolicy egress rule.")


# ---------------------------------------------------------------------------- autoscaling, policies


class ScalingPolicy(_Model):
    type: Literal["Pods", "Percent"]
    value: int = Field(gt=0)
    period_seconds: int = Field(gt=0, le=1800)


class ScalingRules(_Model):
    stabilization_window_seconds: int | None = Field(default=None, ge=0, le=3600)
    select_policy: Literal["Max", "Min", "Disabled"] | None = None
    policies: list[ScalingPolicy] = Field(default=[], max_length=8)


class Behavior(_Model):
    scale_up: ScalingRules = ScalingRules(
        stabilization_window_seconds=0,
        policies=[
            ScalingPolicy(type="Percent", value=100, period_seconds=15),
            ScalingPolicy(type="Pods", value=4, period_seconds=15),
        ],
        select_policy="Max",
    )
    scale_down: ScalingRules = ScalingRules(
        stabilization_window_seconds=300,
        policies=[ScalingPolicy(type="Percent", value=50, period_seconds=60)],
    )


class Autoscaling(_Model):
    enabled: bool = False
    min_replicas: int = Field(default=2, ge=1, le=1000)
    max_replicas: int = Field(default=10, ge=1, le=1000)
    target_cpu_utilization_percentage: int | None = Field(default=70, ge=1, le=1000)
    target_memory_utilization_percentage: int | None = Field(default=None, ge=1, le=1000)
    target_requests_per_second: int | None = Field(
        default=None,
        ge=1,
        description="Average requests/s per pod, from the Pods metric xrouter_requests_per_second "
        "(needs a custom metrics adapter).",
    )
    behavior: Behavior = Behavior()

    @model_validator(mode="after")
    def _check(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("spec.autoscaling.minReplicas must be <= spec.autoscaling.maxReplicas")
        return self


Autoscaling.model_config["json_schema_extra"] = _cel(
    (
        "(has(self.minReplicas) ? self.minReplicas : 2) <= (has(self.maxReplicas) ? self.maxReplicas : 10)",
        "spec.autoscaling.minReplicas must be <= spec.autoscaling.maxReplicas",
        ".minReplicas",
    ),
)


class PeerSelector(_Model):
    """Pods allowed to reach the router (as in a NetworkPolicy ingress peer)."""

    pod_selector: Json | None = None
    namespace_selector: Json | None = None


class Egress(_Model):
    provider_cidrs: list[str] = Field(
        default=["0.0.0.0/0"], description="Where the providers are; port from each baseUrl (default 443)."
    )


class NetworkPolicy(_Model):
    enabled: bool = True
    ingress_from: list[PeerSelector] = Field(
        default=[], description="Who may reach the router port. Empty: every pod in the namespace."
    )
    egress: Egress = Egress()
    allow_metrics_from: list[PeerSelector] = Field(
        default=[], description="Extra peers allowed to scrape metrics (Prometheus)."
    )


class PodDisruptionBudget(_Model):
    enabled: bool = True
    max_unavailable: IntOrString | None = None
    min_available: IntOrString | None = None

    @model_validator(mode="after")
    def _check(self) -> PodDisruptionBudget:
        if self.max_unavailable is not None and self.min_available is not None:
            raise ValueError("spec.podDisruptionBudget: set at most one of maxUnavailable and minAvailable")
        return self


PodDisruptionBudget.model_config["json_schema_extra"] = _cel(
    (
        "!(has(self.maxUnavailable) && has(self.minAvailable))",
        "spec.podDisruptionBudget: set at most one of maxUnavailable and minAvailable",
    ),
)


class BackupStorage(_Model):
    """Either a new PVC (size, storageClassName) or an existing claim."""

    size: Quantity | None = None
    storage_class_name: str | None = None
    existing_claim: str | None = Field(default=None, pattern=DNS_LABEL.replace("-z0-9]*", "-z0-9.]*"))

    @model_validator(mode="after")
    def _check(self) -> BackupStorage:
        if (self.size is None) == (self.existing_claim is None):
            raise ValueError("spec.backup.storage: set exactly one of size (a new PVC) or existingClaim")
        if self.existing_claim is not None and self.storage_class_name is not None:
            raise ValueError("spec.backup.storage.storageClassName only applies to a new PVC (size)")
        return self


BackupStorage.model_config["json_schema_extra"] = _cel(
    (
        "has(self.size) != has(self.existingClaim)",
        "spec.backup.storage: set exactly one of size (a new PVC) or existingClaim",
    ),
    (
        "!has(self.existingClaim) || !has(self.storageClassName)",
        "spec.backup.storage.storageClassName only applies to a new PVC (size)",
        ".storageClassName",
    ),
)


class Backup(_Model):
    """pg_dump of spec.database to a volume, on a schedule."""

    schedule: str = Field(pattern=CRON, description="Cron schedule, e.g. '0 3 * * *'.")
    retention: int = Field(default=7, ge=1, le=1000, description="How many dumps to keep.")
    storage: BackupStorage
    suspend: bool = False
    image: str = Field(default="postgres:16-alpine", min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Backup:
        check_cron(self.schedule)
        return self


class ServiceMonitorSpec(_Model):
    enabled: bool = True
    interval: str = Field(default="30s", pattern=r"^[0-9]+(ms|s|m|h)$")
    labels: dict[str, str] = {}


class PrometheusRuleSpec(_Model):
    enabled: bool = True
    labels: dict[str, str] = {}


class Monitoring(_Model):
    """Created only when the Prometheus operator's CRDs exist in the cluster."""

    service_monitor: ServiceMonitorSpec = ServiceMonitorSpec()
    prometheus_rule: PrometheusRuleSpec = PrometheusRuleSpec()


class Service(_Model):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    port: int = Field(default=80, ge=1, le=65535)
    annotations: dict[str, str] = {}


# ---------------------------------------------------------------------------- spec


class XRouterSpec(_Model):
    """The desired state of one router deployment."""

    suspend: bool = Field(default=False, description="While true the operator changes nothing.")
    replicas: int = Field(default=2, ge=0, le=1000, description="Ignored while autoscaling is enabled.")
    image: Image = Image()
    pods: Pods = Pods()
    rollout: Rollout = Rollout()
    service: Service = Service()
    providers: list[Provider] = Field(min_length=1, max_length=16, json_schema_extra=_map_list("name"))
    models: list[Route] = Field(min_length=1, max_length=64, json_schema_extra=_map_list("name"))
    keys: list[Key] = Field(default=[], max_length=200, json_schema_extra=_map_list("name"))
    default_limits: Limits = Limits()
    prices: dict[str, Price] = Field(default={}, description="Keyed by upstream model name.")
    redis: Redis | None = None
    database: Database | None = None
    autoscaling: Autoscaling = Autoscaling()
    network_policy: NetworkPolicy = NetworkPolicy()
    pod_disruption_budget: PodDisruptionBudget = PodDisruptionBudget()
    backup: Backup | None = None
    monitoring: Monitoring = Monitoring()

    @model_validator(mode="after")
    def _consistent(self) -> XRouterSpec:
        providers = {p.name for p in self.providers}
        models = [m.name for m in self.models]
        for kind, names in (
            ("providers", [p.name for p in self.providers]),
            ("models", models),
            ("keys", [k.name for k in self.keys]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"spec.{kind}: duplicate names {dupes}")
        for m in self.models:
            for t in m.targets:
                if t.provider not in providers:
                    raise ValueError(
                        f"spec.models[{m.name}].targets[].provider: {t.provider!r} is not in spec.providers"
                    )
            if not any(t.weight > 0 for t in m.targets):
                raise ValueError(f"spec.models[{m.name}].targets: at least one target needs weight > 0")
            for f in m.fallbacks:
                if f not in models or f == m.name:
                    raise ValueError(f"spec.models[{m.name}].fallbacks: {f!r} is not another declared model")
        for k in self.keys:
            for name in (k.limits.allowed_models if k.limits else None) or []:
                if name not in models:
                    raise ValueError(f"spec.keys[{k.name}].limits.allowedModels: unknown model {name!r}")
        for name in self.default_limits.allowed_models or []:
            if name not in models:
                raise ValueError(f"spec.defaultLimits.allowedModels: unknown model {name!r}")
        if self.backup is not None and self.database is None:
            raise ValueError("spec.backup needs spec.database (the database to dump)")
        return self


def secret_refs(spec: XRouterSpec) -> list[tuple[str, SecretKeyRef]]:
    """Every secretKeyRef in the spec, with the field path that names it."""
    out = [(f"spec.providers[{p.name}].apiKeySecretRef", p.api_key_secret_ref) for p in spec.providers]
    out += [(f"spec.keys[{k.name}].secretKeyRef", k.secret_key_ref) for k in spec.keys]
    if spec.redis is not None:
        out.append(("spec.redis.urlSecretRef", spec.redis.url_secret_ref))
    if spec.database is not None:
        out.append(("spec.database.urlSecretRef", spec.database.url_secret_ref))
    return [(path, ref) for path, ref in out if ref is not None]


XRouterSpec.model_config["json_schema_extra"] = _cel(
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
)


# ---------------------------------------------------------------------------- status


class Condition(_Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class LastBackup(_Model):
    time: str | None = None
    result: Literal["Succeeded", "Failed", "Running"] | None = None


class XRouterStatus(_Model):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default=[], json_schema_extra=_map_list("type"))
    replicas: int | None = None
    ready_replicas: int | None = None
    replica_summary: str | None = Field(default=None, description="ready/desired, for kubectl get.")
    selector: str | None = None
    endpoint: str | None = None
    last_backup: LastBackup | None = None


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


# ---------------------------------------------------------------------------- cron

_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_NAMES: tuple[dict[str, int], ...] = (
    {},
    {},
    {},
    {
        m: i + 1
        for i, m in enumerate(
            ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        )
    },
    {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
)
_CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")


def check_cron(expr: str) -> None:
    """Raise ValueError naming spec.backup.schedule if ``expr`` is not a valid cron line."""
    expr = expr.strip()
    if expr.startswith("@"):
        if expr[1:] not in {"yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly"}:
            raise ValueError(f"spec.backup.schedule: unknown macro {expr!r}")
        return
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(f"spec.backup.schedule: expected 5 fields, got {len(parts)} in {expr!r}")
    for part, (lo, hi), names, label in zip(parts, _CRON_RANGES, _CRON_NAMES, _CRON_FIELDS, strict=True):
        for item in part.split(","):
            base, _, step = item.partition("/")
            if step and not (step.isdigit() and int(step) > 0):
                raise ValueError(f"spec.backup.schedule: bad step {item!r} in the {label} field")
            if base in ("*", "?"):
                continue
            for bound in base.split("-", 1):
                v = names.get(bound.lower()) if not bound.isdigit() else int(bound)
                if v is None or not lo <= v <= hi:
                    raise ValueError(f"spec.backup.schedule: {bound!r} is out of range in the {label} field")
