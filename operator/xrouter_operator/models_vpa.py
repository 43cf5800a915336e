"""spec.verticalAutoscaling: a VerticalPodAutoscaler for the router pods (autoscaling.k8s.io/v1).

Rendered only where the VPA's CRD is installed (it is not part of Kubernetes); elsewhere the
XRouter carries a VerticalAutoscaling=False condition instead, so the setting is never
silently ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .schema import ApiModel, Quantity

# Said once for the CEL rule and the pydantic check, which must refuse with the same words.
VPA_HPA_CPU_MESSAGE = (
    "spec.verticalAutoscaling.controlledResources: the VPA may not control cpu while "
    "spec.autoscaling (the HPA) scales on cpu (targetCPUUtilizationPercentage): they would fight "
    "over the same signal; drop cpu from controlledResources or turn spec.autoscaling off"
)


class ResourceAmounts(ApiModel):
    cpu: Quantity | None = None
    memory: Quantity | None = None

    def wire(self) -> dict[str, int | str]:
        return self.model_dump(by_alias=True, exclude_none=True)


class VerticalAutoscaling(ApiModel):
    """The VPA's settings for the router container (the only container in the pod)."""

    # Upstream's default is Recreate; "InPlace" is left out: VPA releases before 1.4 refuse it.
    update_mode: Literal["Off", "Initial", "Recreate", "InPlaceOrRecreate"] = Field(
        default="Recreate",
        description="Off: recommendations only. Initial: set at pod creation. Recreate: evict pods "
        "(within the PodDisruptionBudget) to apply. InPlaceOrRecreate: resize in place where the "
        "node allows it.",
    )
    min_allowed: ResourceAmounts = Field(
        default=ResourceAmounts(), description="Lowest requests the VPA may set, e.g. {cpu: 100m}."
    )
    max_allowed: ResourceAmounts = Field(
        default=ResourceAmounts(), description="Highest requests the VPA may set."
    )
    controlled_resources: list[Literal["cpu", "memory"]] = Field(
        default=["cpu", "memory"], min_length=1, max_length=2
    )
    controlled_values: Literal["RequestsAndLimits", "RequestsOnly"] = "RequestsAndLimits"
