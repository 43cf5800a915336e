"""The workload half of the API: image, pods, rollout, Service and autoscaling."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from .models_rollout import Analysis, BlueGreen, Canary
from .schema import ApiModel, IntOrString, Json, Quantity, cel


class PullPolicy(StrEnum):
    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class LocalObjectReference(ApiModel):
    name: str = Field(min_length=1)


class Image(ApiModel):
    repository: str = Field(default="ghcr.io/xrouter/xrouter", min_length=1)
    tag: str = Field(default="0.1.0", min_length=1, description="Image tag (or a digest with @sha256:...).")
    pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    pull_secrets: list[LocalObjectReference] = []

    @property
    def ref(self) -> str:
        sep = "" if self.tag.startswith("@") else ":"
        return f"{self.repository}{sep}{self.tag}"


class Resources(ApiModel):
    requests: dict[str, Quantity] = Field(
        default_factory=lambda: dict[str, int | str](cpu="100m", memory="256Mi")
    )
    limits: dict[str, Quantity] = Field(default_factory=lambda: dict[str, int | str](memory="512Mi"))


# The prefix of the operator's own variables (secrets were XR_* variables before they
# became files). Reserved, so that anything the operator sets there never meets a
# user's variable of the same name, where one of the two would silently win.
RESERVED_ENV_PREFIX = "XR_"


class EnvVar(ApiModel):
    model_config = cel(
        (
            f"!self.name.startsWith('{RESERVED_ENV_PREFIX}')",
            f"spec.pods.env[].name: names starting with {RESERVED_ENV_PREFIX} are reserved for the operator",
            ".name",
        ),
    )

    name: str = Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", max_length=256)
    value: str | None = None
    value_from: Json | None = Field(default=None, description="As in a container's env[].valueFrom.")

    @model_validator(mode="after")
    def _not_reserved(self) -> EnvVar:
        if self.name.startswith(RESERVED_ENV_PREFIX):
            raise ValueError(
                f"spec.pods.env[].name: {self.name!r} is reserved: names starting with "
                f"{RESERVED_ENV_PREFIX} are set by the operator"
            )
        return self


class Toleration(ApiModel):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class Pods(ApiModel):
    """Settings of the router pods."""

    model_config = cel(
        (
            "!has(self.labels) || self.labels.all(k, !k.startsWith('app.kubernetes.io/') "
            "&& !k.startsWith('xrouter.io/'))",
            "spec.pods.labels: keys under app.kubernetes.io/ and xrouter.io/ are reserved for the operator",
            ".labels",
        ),
    )

    resources: Resources = Resources()
    annotations: dict[str, str] = Field(default={}, max_length=64)
    labels: dict[str, str] = Field(default={}, max_length=32)
    env: list[EnvVar] = Field(default=[], max_length=128)  # bounded for the CEL cost budget
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


class Rollout(ApiModel):
    strategy: Literal["rollingUpdate", "canary", "blueGreen"] = Field(
        default="rollingUpdate",
        description="rollingUpdate: the Deployment's own. canary: the new version beside the "
        "stable one in steps; blueGreen: the new version behind a preview Service, then switched "
        "to; both analysed by the operator (see docs/operator.md).",
    )
    max_surge: IntOrString = "25%"
    max_unavailable: IntOrString = 0
    canary: Canary = Canary()
    blue_green: BlueGreen = BlueGreen()
    analysis: Analysis = Analysis()


class Service(ApiModel):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    port: int = Field(default=80, ge=1, le=65535)
    annotations: dict[str, str] = {}


class ScalingPolicy(ApiModel):
    type: Literal["Pods", "Percent"]
    value: int = Field(gt=0)
    period_seconds: int = Field(gt=0, le=1800)


class ScalingRules(ApiModel):
    stabilization_window_seconds: int | None = Field(default=None, ge=0, le=3600)
    select_policy: Literal["Max", "Min", "Disabled"] | None = None
    policies: list[ScalingPolicy] = Field(default=[], max_length=8)


class Behavior(ApiModel):
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


class Autoscaling(ApiModel):
    model_config = cel(
        (
            "(has(self.minReplicas) ? self.minReplicas : 2) "
            "<= (has(self.maxReplicas) ? self.maxReplicas : 10)",
            "spec.autoscaling.minReplicas must be <= spec.autoscaling.maxReplicas",
            ".minReplicas",
        ),
    )

    enabled: bool = False
    min_replicas: int = Field(default=2, ge=1, le=1000)
    max_replicas: int = Field(default=10, ge=1, le=1000)
    # Spelled as in every Helm chart (the camelCase alias generator would say "Cpu").
    target_cpu_utilization_percentage: int | None = Field(
        default=70, ge=1, le=1000, alias="targetCPUUtilizationPercentage"
    )
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
