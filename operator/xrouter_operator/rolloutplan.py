"""What a rollout step decides (:class:`Plan`) and the helpers the canary
(:mod:`rollout`) and blue-green (:mod:`bluegreen`) state machines share, so that neither
imports the other's module."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from .analysis import Sample
from .models_rollout import Measured, RolloutStatus

Obj = dict[str, Any]
CondStatus = Literal["True", "False", "Unknown"]
PROMOTE_ANNOTATION = "xrouter.io/promote"
ABORT_ANNOTATION = "xrouter.io/abort"
# How soon to look again while the stable Deployment takes the promoted template.
PROMOTING_POLL_SECONDS = 2.0


@dataclass
class Plan:
    desired: list[Obj]
    status: RolloutStatus | None = None
    progressing: tuple[CondStatus, str, str] | None = None
    degraded: tuple[CondStatus, str, str] | None = None
    requeue_after: float | None = None
    delete: list[tuple[str, str]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)


def parse_time(s: str) -> datetime:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def measured(s: Sample) -> Measured:
    p95 = s.quantile(0.95)
    return Measured(
        requests=int(s.requests),
        error_rate=f"{100 * s.error_rate:.2f}%",
        p95_seconds=f"{p95:.3f}" if p95 is not None else None,
    )


class RolloutReads(Protocol):
    """What blue-green reads through the reconciler's :class:`rollout.Rollouts`."""

    def owned(self, kind: str, ns: str, name: str, uid: str) -> Obj | None: ...

    @staticmethod
    def previous(old_status: Obj | None) -> RolloutStatus | None: ...

    def samples(
        self, ns: str, name: str, rev: str, stable_rev: str | None
    ) -> tuple[dict[str, Sample], dict[str, Sample]]: ...
