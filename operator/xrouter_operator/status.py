"""Pure status computation from the children's real state.

``compute_status`` takes what the operator observed (the Deployment, the backup
CronJob and its Jobs) and what went wrong while applying, and returns the status as
an :class:`~xrouter_operator.models.XRouterStatus` (``.wire()`` is the dict the API
stores). It keeps ``lastTransitionTime`` of a condition whose status did not change, so
the same observations give the same status and a steady state writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .models import Condition, LastBackup, XRouterStatus

Obj = dict[str, Any]
CondStatus = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Observed:
    """The children as they are in the cluster (only those this XRouter owns)."""

    deployment: Obj | None = None
    cronjob: Obj | None = None
    jobs: list[Obj] = field(default_factory=list)
    pods: list[Obj] = field(default_factory=list)
    backup_pods: list[Obj] = field(default_factory=list)  # the backup Jobs' pods


@dataclass(frozen=True)
class Problems:
    invalid: str | None = None  # the spec failed validation in the operator
    conflicts: list[str] = field(default_factory=list)  # objects we refuse to clobber
    apply_errors: list[str] = field(default_factory=list)
    missing_secrets: list[str] = field(default_factory=list)  # referenced Secrets/keys that do not exist


@dataclass(frozen=True)
class BackupFacts:
    last_time: str | None = None
    last_result: Literal["Succeeded", "Failed"] | None = None
    last_success_time: str | None = None
    # The last finished run's termination message: the object it wrote, or why it failed.
    message: str | None = None


# A termination message holds up to 4096 bytes; status keeps a readable line of it.
MESSAGE_MAX = 1024


def _termination_message(job: Obj, pods: list[Obj]) -> str | None:
    """What the Job's newest pod said as it ended. Only our backup script writes it (the
    kubelet's default terminationMessagePolicy, File: never the container's log)."""
    uid = job.get("metadata", {}).get("uid")
    mine = [
        p
        for p in pods
        if uid and any(o.get("uid") == uid for o in p.get("metadata", {}).get("ownerReferences", []) or [])
    ]
    ended: list[tuple[str, str]] = []
    for p in mine:
        for cs in p.get("status", {}).get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated") or {}
            if term.get("message"):
                ended.append((term.get("finishedAt") or "", term["message"].strip()))
    return max(ended)[1][:MESSAGE_MAX] if ended else None


def condition(conditions: list[Obj], type_: str) -> Obj | None:
    """The condition of ``type_`` in a status's (or a Deployment's) ``conditions``."""
    return next((c for c in conditions if c.get("type") == type_), None)


def rollout(dep: Obj) -> tuple[bool, int, int, str]:
    """(complete, ready, desired, message) for a Deployment, as `kubectl rollout status` sees it."""
    spec = dep.get("spec", {})
    st = dep.get("status", {})
    desired = int(spec.get("replicas", 1))
    ready = int(st.get("readyReplicas", 0))
    updated = int(st.get("updatedReplicas", 0))
    total = int(st.get("replicas", 0))
    available = int(st.get("availableReplicas", 0))
    observed = int(st.get("observedGeneration", 0)) >= int(dep.get("metadata", {}).get("generation", 0))
    if not observed:
        return False, ready, desired, "waiting for the Deployment controller to observe the new spec"
    if updated < desired:
        return False, ready, desired, f"{updated} of {desired} pods updated"
    if total > updated:
        return False, ready, desired, f"{total - updated} old pods terminating"
    if available < updated:
        return False, ready, desired, f"{available} of {updated} updated pods available"
    return True, ready, desired, f"{ready}/{desired} replicas ready"


def serving_floor(desired: int, min_replicas: int | None) -> int:
    """How many available pods make the XRouter Ready: one short of what it must run
    (spec.replicas, or minReplicas under an HPA), at least 1.

    Like a Deployment's Available condition this asks whether enough pods serve, not
    whether the rollout is finished. It cannot reuse that condition: with our default
    maxUnavailable 0 the Deployment calls itself unavailable whenever one pod restarts
    or the HPA adds a pod, which would flip Ready, the ready gauge and Argo CD's health
    on every scale-up. One pod short (a pod restarting or being replaced) is
    Progressing; capacity the HPA adds above minReplicas is never required."""
    base = desired if min_replicas is None else min(desired, min_replicas)
    return max(1, base - 1)


def backup_facts(cronjob: Obj | None, jobs: list[Obj], pods: list[Obj] | None = None) -> BackupFacts:
    """The most recent finished backup Job (and the last success); with the Jobs' ``pods``,
    what its pod said as it ended (an S3 backup names the object it wrote)."""
    if cronjob is None:
        return BackupFacts()
    finished: list[tuple[str, Literal["Succeeded", "Failed"], int]] = []
    for i, job in enumerate(jobs):
        st = job.get("status", {})
        for c in st.get("conditions", []) or []:
            if c.get("status") != "True":
                continue
            if c.get("type") == "Complete":
                finished.append((st.get("completionTime") or c.get("lastTransitionTime", ""), "Succeeded", i))
            elif c.get("type") == "Failed":
                finished.append((c.get("lastTransitionTime", ""), "Failed", i))
    finished.sort()
    success = [t for t, r, _ in finished if r == "Succeeded"]
    last_success = max(success) if success else cronjob.get("status", {}).get("lastSuccessfulTime")
    if finished:
        t, r, i = finished[-1]
        return BackupFacts(t, r, last_success, _termination_message(jobs[i], pods or []))
    if last_success:
        return BackupFacts(last_success, "Succeeded", last_success)
    return BackupFacts()


def container_restarts(pods: list[Obj]) -> int:
    return sum(
        int(cs.get("restartCount", 0))
        for p in pods
        for cs in (p.get("status", {}).get("containerStatuses") or [])
    )


def compute_status(
    *,
    generation: int,
    suspend: bool,
    old: Obj | None,
    observed: Observed,
    problems: Problems,
    endpoint: str,
    selector: str,
    now: str,
    min_replicas: int | None = None,
    extra: Sequence[tuple[str, tuple[CondStatus, str, str]]] = (),
) -> XRouterStatus:
    """The new status. ``now`` is only used for conditions whose status changes;
    ``min_replicas`` is spec.autoscaling.minReplicas while an HPA scales the Deployment;
    ``extra`` are further conditions as (type, (status, reason, message)), e.g. VerticalAutoscaling."""
    old = old or {}
    dep = observed.deployment
    # Ready: enough pods serve (see serving_floor), whatever else is going on.
    available = 0
    if dep is None:
        complete, ready, desired, detail = False, 0, 0, "the Deployment does not exist yet"
    else:
        complete, ready, desired, detail = rollout(dep)
        available = int(dep.get("status", {}).get("availableReplicas", 0))
    ready_c: tuple[CondStatus, str, str]
    if dep is not None and complete and desired == 0:
        # Nothing serves: not Ready, but not a fault either (Argo CD shows Suspended).
        ready_c = ("False", "ScaledToZero", "scaled to 0 replicas: no router pod is running")
    elif dep is not None and available >= serving_floor(desired, min_replicas):
        ready_c = ("True", "Available", f"{available}/{desired} replicas available")
    else:
        ready_c = ("False", "DeploymentMissing" if dep is None else "NotReady", detail)

    stuck = None
    if dep is not None:
        prog = condition(dep.get("status", {}).get("conditions") or [], "Progressing")
        if prog and prog.get("reason") == "ProgressDeadlineExceeded":
            stuck = f"the Deployment rollout is stuck: {prog.get('message', '')}"

    degraded: tuple[CondStatus, str, str]
    if problems.invalid:
        degraded = ("True", "InvalidSpec", problems.invalid)
    elif problems.conflicts:
        degraded = ("True", "OwnershipConflict", "; ".join(problems.conflicts))
    elif problems.apply_errors:
        degraded = ("True", "ApplyFailed", "; ".join(problems.apply_errors))
    elif problems.missing_secrets:
        degraded = ("True", "SecretMissing", "; ".join(problems.missing_secrets))
    elif stuck:
        degraded = ("True", "RolloutStuck", stuck)
    else:
        degraded = ("False", "AsExpected", "")

    progressing: tuple[CondStatus, str, str]
    if suspend:
        progressing = ("False", "Suspended", "spec.suspend is true: the operator makes no changes")
    elif problems.invalid:
        progressing = ("False", "InvalidSpec", "fix the spec to continue")
    elif dep is None:
        progressing = ("True", "Creating", detail)
    elif not complete:
        progressing = ("True", "RollingOut", detail)  # a rollout, a scale-up or a pod coming back
    else:
        progressing = ("False", "RolloutComplete", detail)

    old_conds = {c.get("type"): c for c in old.get("conditions", []) or []}
    conditions: list[Condition] = []
    for type_, (cstatus, reason, message) in (
        ("Ready", ready_c),
        ("Progressing", progressing),
        ("Degraded", degraded),
        *extra,
    ):
        prev = old_conds.get(type_)
        ltt = prev.get("lastTransitionTime") if prev and prev.get("status") == cstatus else None
        conditions.append(
            Condition(
                type=type_,
                status=cstatus,
                reason=reason,
                message=message[:1024],
                last_transition_time=ltt or now,
                observed_generation=generation,
            )
        )

    facts = backup_facts(observed.cronjob, observed.jobs, observed.backup_pods)
    last_backup = None
    if facts.last_time:
        ok = facts.last_result == "Succeeded"
        last_backup = LastBackup(
            time=facts.last_time,
            result=facts.last_result,
            object=facts.message if ok and facts.message and facts.message.startswith("s3://") else None,
            message=None if ok else facts.message or "the backup Job failed: see its pod's log",
        )
    return XRouterStatus(
        observed_generation=generation,
        conditions=conditions,
        replicas=int(dep.get("status", {}).get("replicas", 0)) if dep else 0,
        ready_replicas=ready,
        replica_summary=f"{ready}/{desired}",
        selector=selector,
        endpoint=endpoint,
        last_backup=last_backup,
    )


def status_patch(old: Obj | None, new: Obj) -> Obj | None:
    """A merge patch from old to new (None when nothing changed). Keys that went away,
    at any depth, are set to null."""
    old = old or {}
    if old == new:
        return None
    return _with_nulls(old, new)


def _with_nulls(old: Obj, new: Obj) -> Obj:
    # Nested too: status.rollout loses fields as a rollout moves on (a merge patch would
    # otherwise keep the stale ones, and every reconcile would find a difference to write).
    patch: Obj = dict(new)
    for key, value in old.items():
        if key not in new:
            patch[key] = None
        elif isinstance(value, dict) and isinstance(new[key], dict):
            patch[key] = _with_nulls(value, new[key])
    return patch
