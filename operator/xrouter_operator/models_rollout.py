"""spec.rollout's progressive delivery: the canary's steps and the analysis thresholds, and
status.rollout. The plain rolling update (the default) uses none of this."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .schema import ApiModel


class CanaryStep(ApiModel):
    weight: int = Field(ge=1, le=99, description="Percent of ready pods that run the new version.")
    pause_seconds: int = Field(
        default=30, ge=0, le=86400, description="How long the step runs (and is analysed) before the next."
    )


DEFAULT_STEPS = [CanaryStep(weight=w, pause_seconds=30) for w in (20, 40, 60, 80)]


class Canary(ApiModel):
    steps: list[CanaryStep] = Field(default=DEFAULT_STEPS, min_length=1, max_length=16)


class BlueGreen(ApiModel):
    auto_promotion: bool = Field(
        default=True,
        description="Promote on its own once the preview passed analysis for previewSeconds; "
        "false: only the xrouter.io/promote annotation promotes.",
    )
    preview_seconds: int = Field(default=30, ge=0, le=86400, description="Analysis time of the preview.")
    scale_down_delay_seconds: int = Field(
        default=30, ge=0, le=86400, description="How long the old version is kept after the switch."
    )


class Analysis(ApiModel):
    """Thresholds the canary must meet at every step; judged from the pods' own /metrics."""

    interval_seconds: int = Field(default=5, ge=1, le=300, description="How often the pods are read.")
    min_requests: int = Field(
        default=20, ge=1, description="Canary requests needed before a step can pass or fail."
    )
    max_error_rate: float = Field(default=0.05, ge=0, le=1, description="5xx answers / requests.")
    max_error_rate_increase: float = Field(
        default=0.02, ge=0, le=1, description="Over the stable pods' error rate in the same window."
    )
    max_p95_seconds: float | None = Field(default=None, gt=0, description="Absolute p95 latency bound.")
    max_p95_ratio: float | None = Field(
        default=1.5, ge=1, description="Canary p95 / stable p95 (counted beyond 50 ms of difference)."
    )


RolloutPhase = Literal["Progressing", "Promoting", "Promoted", "Aborted"]


class Measured(ApiModel):
    requests: int
    error_rate: str  # as a percentage string: status values stay exact and readable
    p95_seconds: str | None = None


class RolloutStatus(ApiModel):
    """Where the rollout of a new pod template (or config) stands."""

    revision: str = Field(description="The new version's pod-template hash.")
    stable_revision: str | None = None
    phase: RolloutPhase
    step: int | None = Field(default=None, description="1-based; the number of steps while promoting.")
    steps: int | None = None
    weight: int | None = Field(default=None, description="Percent of ready pods that are canary pods.")
    step_started_at: str | None = None
    verdict: Literal["Running", "Passed", "Failed", "Inconclusive"] | None = None
    reason: str | None = None
    canary: Measured | None = None
    stable: Measured | None = None
