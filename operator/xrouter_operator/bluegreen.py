"""Blue-green (``spec.rollout.strategy: blueGreen``), on the canary's machinery.

The pod template carries its revision as a label, and the router Service selects the active
revision. A new version runs at full size as ``NAME-preview`` behind the Service
``NAME-preview`` while the active one keeps all the traffic; its pods' /metrics are analysed
(what the preview serves: testers, smoke tests, mirrored traffic) against the stable pods'.
Promotion, automatic after ``previewSeconds`` with a passing verdict or by the
``xrouter.io/promote`` annotation, switches the Service's selector to the new revision at
once. The old pods are kept for ``scaleDownDelaySeconds`` (a failing verdict meanwhile
switches back), then ``NAME`` takes the new template and the preview objects go.
"""

from __future__ import annotations

import copy
from typing import Any

from . import analysis, canary
from .analysis import Sample
from .models import XRouter
from .models_rollout import RolloutStatus
from .rolloutplan import (
    ABORT_ANNOTATION,
    PROMOTE_ANNOTATION,
    PROMOTING_POLL_SECONDS,
    Plan,
    RolloutReads,
    measured,
    parse_time,
)

Obj = dict[str, Any]


def preview_name(name: str) -> str:
    return f"{name}-preview"


def _labelled(dep: Obj | None) -> str | None:
    """The revision label every pod of the Deployment carries (None while old pods are left,
    or without one). Not "rollout complete": a restarting pod must not flip the Service."""
    if dep is None:
        return None
    st = dep.get("status", {})
    if int(st.get("observedGeneration", 0)) < int(dep["metadata"].get("generation", 0)):
        return None
    if int(st.get("replicas", 0)) != int(st.get("updatedReplicas", 0)):
        return None
    labels = dep["spec"]["template"]["metadata"].get("labels") or {}
    return labels.get(canary.REVISION_LABEL)


def _select(svc: Obj, rev: str | None) -> Obj:
    out = copy.deepcopy(svc)
    if rev is not None:
        out["spec"]["selector"] = {**out["spec"]["selector"], canary.REVISION_LABEL: rev}
    return out


def _preview(new: Obj, svc: Obj, rev: str) -> tuple[Obj, Obj]:
    dep = copy.deepcopy(new)
    dep["metadata"]["name"] = preview_name(new["metadata"]["name"])
    dep["spec"]["selector"]["matchLabels"][canary.REVISION_LABEL] = rev
    service = _select(svc, rev)
    service["metadata"]["name"] = preview_name(svc["metadata"]["name"])
    service["metadata"].pop("annotations", None)
    service["spec"]["type"] = "ClusterIP"
    return dep, service


def plan(r: RolloutReads, xr: XRouter, desired: list[Obj], old_status: Obj | None, now: str) -> Plan:
    ns, name, uid = xr.metadata.namespace, xr.metadata.name, xr.metadata.uid
    bg, replicas = xr.spec.rollout.blue_green, xr.spec.replicas
    i = next(k for k, m in enumerate(desired) if m["kind"] == "Deployment")
    j = next(k for k, m in enumerate(desired) if m["kind"] == "Service")
    new, svc = desired[i], desired[j]
    rev = canary.revision(new) or ""
    live = r.owned("Deployment", ns, name, uid)
    preview = r.owned("Deployment", ns, preview_name(name), uid)
    prev = r.previous(old_status)
    same = prev is not None and prev.revision == rev
    stable_rev, active = canary.revision(live), _labelled(live)
    p = Plan(desired=list(desired))

    def drop_preview() -> None:
        if preview is not None:
            p.delete += [("Deployment", preview_name(name)), ("Service", preview_name(name))]

    def status(phase: str, verdict: str, reason: str, started: str | None = None, **figures: Any) -> None:
        p.status = RolloutStatus.model_validate({
            "revision": rev, "stableRevision": stable_rev, "phase": phase, "verdict": verdict,
            "reason": reason[:1024], "stepStartedAt": started, **figures,
        })  # fmt: skip

    if live is None or stable_rev == rev or active is None:
        # Nothing to preview: the first version, a finished switch, or a Deployment whose pods
        # do not all carry a revision label yet (a switch from another strategy rolls plainly).
        p.desired[j] = _select(svc, active if active == rev else None)
        if preview is not None and (active != rev):
            p.desired[j] = _select(svc, rev)  # the preview's pods serve until NAME has rolled
            p.progressing = ("True", "BlueGreenPromoting", f"{name} takes revision {rev}")
            p.requeue_after = PROMOTING_POLL_SECONDS
            status("Promoting", "Passed", "the old version is being replaced")
            return p
        drop_preview()
        if preview is not None:
            p.events.append(("Normal", "RolloutPromoted", f"revision {rev} is stable"))
        base = prev if same and prev is not None else RolloutStatus(revision=rev, phase="Promoted")
        p.status = base.model_copy(update={"phase": "Promoted", "stable_revision": rev})
        return p

    stable = canary.stable_deployment(new, live, replicas)
    p.desired[i] = stable

    def abort(reason: str) -> Plan:
        p.desired[j] = _select(svc, active)
        drop_preview()
        status("Aborted", "Failed", reason)
        p.degraded = ("True", "RolloutAborted", f"revision {rev} rolled back: {reason}"[:1024])
        return p

    if same and prev is not None and prev.phase == "Aborted":
        p.desired[j] = _select(svc, active)
        drop_preview()
        p.status = prev
        p.degraded = ("True", "RolloutAborted", f"revision {rev} rolled back: {prev.reason}")
        return p
    if xr.metadata.annotations.get(ABORT_ANNOTATION) == rev:
        return abort("aborted by annotation")

    dep, psvc = _preview(new, svc, rev)
    p.desired += [dep, psvc]
    c_pods, s_pods = r.samples(ns, name, rev, stable_rev)
    c_sum, s_sum = sum(c_pods.values(), Sample()), sum(s_pods.values(), Sample())
    ok, reason = analysis.judge(c_sum, s_sum, xr.spec.rollout.analysis)
    figures = {
        k: measured(v).model_dump(by_alias=True, exclude_none=True)
        for k, v in (("canary", c_sum), ("stable", s_sum))
    }
    if ok is False:
        return abort(reason)
    p.requeue_after = float(xr.spec.rollout.analysis.interval_seconds)

    if same and prev is not None and prev.phase == "Promoting" and prev.step_started_at:
        # Switched: the new pods serve, the old ones wait out the delay in case of a switch back.
        p.desired[j] = _select(svc, rev)
        waited = (parse_time(now) - parse_time(prev.step_started_at)).total_seconds()
        if waited >= bg.scale_down_delay_seconds:
            p.desired[i] = new  # NAME rolls to the new version; the preview is dropped after
            p.events.append(("Normal", "BlueGreenScaleDown", f"the old revision {stable_rev} goes"))
        status("Promoting", "Passed", reason, prev.step_started_at, **figures)
        p.progressing = ("True", "BlueGreenPromoting", f"revision {rev} serves; the old one is kept "
                         f"for {bg.scale_down_delay_seconds}s")  # fmt: skip
        return p

    p.desired[j] = _select(svc, active)
    ready = int((preview or {}).get("status", {}).get("readyReplicas", 0))
    started = prev.step_started_at if same and prev is not None and prev.step_started_at else now
    if ready < replicas:
        started, reason = now, f"waiting for preview pods: {ready}/{replicas} ready"
    manual = xr.metadata.annotations.get(PROMOTE_ANNOTATION) == rev
    due = (
        bg.auto_promotion
        and ok
        and (parse_time(now) - parse_time(started)).total_seconds() >= bg.preview_seconds
    )
    if ready >= replicas and (manual or due):
        p.desired[j] = _select(svc, rev)
        p.events.append(("Normal", "BlueGreenSwitched", f"the Service serves revision {rev}: "
                         f"{'promoted by annotation' if manual else reason}"[:1024]))  # fmt: skip
        status("Promoting", "Passed", reason, now, **figures)
        p.progressing = ("True", "BlueGreenPromoting", f"revision {rev} serves")
        return p
    if not (ready < replicas):
        reason = reason if bg.auto_promotion else f"waiting for xrouter.io/promote: {rev} ({reason})"
    if started == now and not same:
        p.events.append(("Normal", "BlueGreenPreview", f"revision {rev} behind Service {preview_name(name)}"))
    status("Progressing", "Running" if ok or ready < replicas else "Inconclusive", reason, started, **figures)
    p.progressing = (
        "True",
        "BlueGreenPreview",
        f"revision {rev} behind {preview_name(name)}; {reason}"[:1024],
    )
    return p
