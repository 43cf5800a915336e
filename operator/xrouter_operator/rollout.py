"""The canary state machine, driven by reconcile (no kopf timer, so no finalizer).

Each reconcile of an XRouter with ``spec.rollout.strategy: canary`` calls
:meth:`Rollouts.plan`, which looks at the stable Deployment's live pod template, the rendered
one and ``status.rollout``, reads the pods' /metrics, and returns what to apply instead of
the plain Deployment (the stable one, unchanged but for its replicas, and ``NAME-canary``),
what to delete, the status and events, and when to look again. Everything it needs to go on
is in the cluster and in ``status.rollout``; only the stable pods' baseline counters live in
memory (an operator restart takes a new baseline).

Manual control, GitOps-friendly because the value names the revision (a leftover annotation
never touches the next rollout): ``xrouter.io/promote: <revision>`` promotes at once,
``xrouter.io/abort: <revision>`` rolls back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from pydantic import ValidationError

from . import analysis, bluegreen, canary
from .analysis import Sample
from .apply import owned_by
from .kube import Kube
from .models import Condition, XRouter, XRouterStatus
from .models_rollout import RolloutStatus
from .naming import HTTP_PORT, children_selector, selector_string
from .rolloutplan import (
    ABORT_ANNOTATION,
    PROMOTE_ANNOTATION,
    PROMOTING_POLL_SECONDS,
    Obj,
    Plan,
    measured,
    parse_time,
)
from .status import rollout as deployment_rollout

log = logging.getLogger("xrouter_operator")


def with_conditions(status: XRouterStatus, plan: Plan | None, old: Obj | None, now: str) -> XRouterStatus:
    """The status with the rollout block, and Progressing/Degraded saying where the rollout
    stands. A Degraded the Deployment or the spec already explains is left as it is."""
    if plan is None or plan.status is None:
        return status
    old_conds = {c.get("type"): c for c in (old or {}).get("conditions", []) or []}
    conditions = []
    for c in status.conditions:
        want = plan.progressing if c.type == "Progressing" else None
        if c.type == "Degraded" and c.status != "True":
            want = plan.degraded
        if want is not None:
            prev = old_conds.get(c.type)
            keep = prev is not None and prev.get("status") == want[0]
            c = Condition(
                type=c.type,
                status=want[0],
                reason=want[1],
                message=want[2][:1024],
                last_transition_time=str(prev["lastTransitionTime"]) if keep and prev else now,
                observed_generation=c.observed_generation,
            )
        conditions.append(c)
    return status.model_copy(update={"conditions": conditions, "rollout": plan.status})


class Rollouts:
    def __init__(self, kube: Kube, scrape: Callable[[str, int], Sample | None] = analysis.scrape) -> None:
        self.kube = kube
        self.scrape = scrape
        # (namespace, name, revision) -> stable pod -> its counters when the rollout began.
        self.baselines: dict[tuple[str, str, str], dict[str, Sample]] = {}

    def plan(self, xr: XRouter, desired: list[Obj], old_status: Obj | None, now: str) -> Plan:
        """What to apply and delete for the rollout in progress (see the module docstring)."""
        ns, name, uid = xr.metadata.namespace, xr.metadata.name, xr.metadata.uid
        if xr.spec.rollout.strategy == "blueGreen":
            return bluegreen.plan(self, xr, desired, old_status, now)
        if xr.spec.rollout.strategy != "canary":
            # A canary left behind by a switch back to rollingUpdate goes (only when its
            # status says there was one: the plain path makes no extra read).
            plan = Plan(desired=desired)
            if (old_status or {}).get("rollout"):
                self._drop_canary(plan, self.owned("Deployment", ns, canary.canary_name(name), uid))
            return plan
        i = next(k for k, m in enumerate(desired) if m["kind"] == "Deployment")
        new = desired[i]
        new_rev = canary.revision(new) or ""
        replicas = xr.spec.replicas
        live = self.owned("Deployment", ns, name, uid)
        canary_live = self.owned("Deployment", ns, canary.canary_name(name), uid)
        prev = self.previous(old_status)
        stable_rev = canary.revision(live)
        plan = Plan(desired=list(desired))

        if live is None or stable_rev == new_rev:
            return self._steady(xr, plan, live, canary_live, prev, new_rev)
        stable = canary.stable_deployment(new, live, replicas)
        annotations = xr.metadata.annotations
        same = prev is not None and prev.revision == new_rev
        if same and prev is not None and prev.phase == "Aborted":
            plan.desired[i] = stable
            self._drop_canary(plan, canary_live)
            plan.status = prev
            plan.degraded = ("True", "RolloutAborted", f"revision {new_rev} rolled back: {prev.reason}")
            return plan
        if annotations.get(ABORT_ANNOTATION) == new_rev:
            return self._abort(
                plan, i, stable, canary_live, prev, new_rev, stable_rev, "aborted by annotation"
            )

        steps = xr.spec.rollout.canary.steps
        if same and prev is not None and prev.phase == "Progressing" and prev.step and prev.step_started_at:
            step, started = prev.step, prev.step_started_at
        else:
            step, started = 1, now
            self.baselines.pop((ns, name, new_rev), None)
            plan.events.append(
                ("Normal", "CanaryStarted", f"revision {new_rev} (stable {stable_rev}): {len(steps)} steps")
            )
        if annotations.get(PROMOTE_ANNOTATION) == new_rev:
            plan.events.append(("Normal", "CanaryPromoted", f"revision {new_rev} promoted by annotation"))
            return self._promote(
                plan, i, new, prev, new_rev, stable_rev, len(steps), "promoted by annotation"
            )

        c_pods, s_pods = self.samples(ns, name, new_rev, stable_rev)
        c_sum = sum(c_pods.values(), Sample())
        s_sum = sum(s_pods.values(), Sample())
        ok, reason = analysis.judge(c_sum, s_sum, xr.spec.rollout.analysis)
        if ok is False:
            return self._abort(plan, i, stable, canary_live, prev, new_rev, stable_rev, reason, c_sum, s_sum)

        want_c, want_s = canary.split(replicas, steps[step - 1].weight)
        c_ready = int((canary_live or {}).get("status", {}).get("readyReplicas", 0))
        s_ready = int(live.get("status", {}).get("readyReplicas", 0))
        verdict: Literal["Running", "Passed", "Inconclusive"] = "Running"
        if c_ready < want_c:
            # The step's pause counts from when its canary pods serve.
            started = now
            reason = f"waiting for canary pods: {c_ready}/{want_c} ready"
        elif (parse_time(now) - parse_time(started)).total_seconds() >= steps[step - 1].pause_seconds:
            if ok:
                plan.events.append(
                    ("Normal", "CanaryStepPassed", f"step {step}/{len(steps)} "
                     f"(weight {steps[step - 1].weight}%) passed: {reason}")
                )  # fmt: skip
                step, started, verdict = step + 1, now, "Passed"
                if step > len(steps):
                    return self._promote(
                        plan, i, new, prev, new_rev, stable_rev, len(steps), reason, c_sum, s_sum
                    )
                want_c, want_s = canary.split(replicas, steps[step - 1].weight)
            else:
                verdict = "Inconclusive"
        # Scale the stable version down only once the canary pods for this step serve: the
        # ready pods never drop below spec.replicas.
        live_s = int(live.get("spec", {}).get("replicas", replicas))
        plan.desired[i] = canary.stable_deployment(
            new, live, want_s if c_ready >= want_c else max(want_s, live_s)
        )
        plan.desired.append(canary.canary_deployment(new, want_c))
        weight = round(100 * c_ready / (c_ready + s_ready)) if c_ready + s_ready else 0
        plan.status = RolloutStatus(
            revision=new_rev, stable_revision=stable_rev, phase="Progressing", step=step, steps=len(steps),
            weight=weight, step_started_at=started, verdict=verdict, reason=reason[:1024],
            canary=measured(c_sum), stable=measured(s_sum),
        )  # fmt: skip
        plan.progressing = (
            "True",
            "CanaryProgressing",
            f"canary step {step}/{len(steps)}: {weight}% of ready pods on revision {new_rev}; {reason}"[
                :1024
            ],
        )
        plan.requeue_after = float(xr.spec.rollout.analysis.interval_seconds)
        return plan

    # ------------------------------------------------------------------ outcomes

    def _steady(
        self,
        xr: XRouter,
        plan: Plan,
        live: Obj | None,
        canary_live: Obj | None,
        prev: RolloutStatus | None,
        rev: str,
    ) -> Plan:
        """The stable Deployment has the wanted template (or is being created): nothing to
        analyse. A canary left over from a promotion goes once the stable pods are updated."""
        base = prev if prev is not None and prev.revision == rev else None
        if canary_live is not None and live is not None and not deployment_rollout(live)[0]:
            plan.status = (base or RolloutStatus(revision=rev, phase="Promoting")).model_copy(
                update={"phase": "Promoting"}
            )
            plan.progressing = ("True", "CanaryPromoting", f"the stable pods take revision {rev}")
            plan.requeue_after = PROMOTING_POLL_SECONDS
            return plan
        if canary_live is not None:
            self._drop_canary(plan, canary_live)
        if base is not None and base.phase == "Promoting":
            plan.events.append(("Normal", "RolloutPromoted", f"revision {rev} is stable"))
        plan.status = (base or RolloutStatus(revision=rev, phase="Promoted")).model_copy(
            update={"phase": "Promoted", "stable_revision": rev}
        )
        self.baselines = {
            k: v for k, v in self.baselines.items() if k[:2] != (xr.metadata.namespace, xr.metadata.name)
        }
        if live is not None:
            self._unused_configs(xr, plan, live)
        return plan

    def _promote(
        self, plan: Plan, i: int, new: Obj, prev: RolloutStatus | None, rev: str, stable_rev: str | None,
        steps: int, reason: str, c: Sample | None = None, s: Sample | None = None,
    ) -> Plan:  # fmt: skip
        # The stable Deployment takes the new template (its own 0-failure rolling update);
        # the canary keeps serving until that is done (see _steady), so capacity never dips.
        plan.desired[i] = new
        plan.status = RolloutStatus(
            revision=rev, stable_revision=stable_rev, phase="Promoting", step=steps, steps=steps, weight=None,
            verdict="Passed", reason=reason[:1024],
            canary=measured(c) if c else (prev.canary if prev else None),
            stable=measured(s) if s else (prev.stable if prev else None),
        )  # fmt: skip
        plan.progressing = ("True", "CanaryPromoting", f"revision {rev} passed; the stable pods take it")
        plan.requeue_after = PROMOTING_POLL_SECONDS
        return plan

    def _abort(
        self, plan: Plan, i: int, stable: Obj, canary_live: Obj | None, prev: RolloutStatus | None, rev: str,
        stable_rev: str | None, reason: str, c: Sample | None = None, s: Sample | None = None,
    ) -> Plan:  # fmt: skip
        plan.desired[i] = stable
        self._drop_canary(plan, canary_live)
        plan.status = RolloutStatus(
            revision=rev, stable_revision=stable_rev, phase="Aborted",
            step=prev.step if prev and prev.revision == rev else None,
            steps=prev.steps if prev and prev.revision == rev else None, weight=0,
            verdict="Failed", reason=reason[:1024],
            canary=measured(c) if c else None, stable=measured(s) if s else None,
        )  # fmt: skip
        # The Warning event comes from the Degraded condition turning True (reconcile._events).
        plan.degraded = ("True", "RolloutAborted", f"revision {rev} rolled back: {reason}"[:1024])
        return plan

    def delete(self, namespace: str, plan: Plan, writes: list[str]) -> None:
        for kind, name in plan.delete:
            obj = self.kube.get(kind, namespace, name)
            if obj is not None:
                self.kube.delete(kind, namespace, name, obj["metadata"]["uid"])
                writes.append(f"deleted {kind} {name}")

    # ------------------------------------------------------------------ helpers

    def owned(self, kind: str, ns: str, name: str, uid: str) -> Obj | None:
        obj = self.kube.get(kind, ns, name)
        return obj if obj is not None and owned_by(obj, uid) else None

    @staticmethod
    def previous(old_status: Obj | None) -> RolloutStatus | None:
        raw = (old_status or {}).get("rollout")
        if not raw:
            return None
        try:
            return RolloutStatus.model_validate(raw)
        except ValidationError:
            return None

    @staticmethod
    def _drop_canary(plan: Plan, canary_live: Obj | None) -> None:
        if canary_live is not None:
            plan.delete.append(("Deployment", canary_live["metadata"]["name"]))

    def _unused_configs(self, xr: XRouter, plan: Plan, live: Obj) -> None:
        """Versioned ConfigMaps that no Deployment mounts any more (kept while one does)."""
        keep = canary.config_maps_in_use(live, *[m for m in plan.desired if m["kind"] == "Deployment"])
        keep |= {m["metadata"]["name"] for m in plan.desired if m["kind"] == "ConfigMap"}
        ns = xr.metadata.namespace
        for cm in self.kube.list("ConfigMap", ns, children_selector(xr.metadata.name)):
            meta = cm["metadata"]
            versioned = canary.CONFIG_VERSION_LABEL in (meta.get("labels") or {})
            if versioned and meta["name"] not in keep and owned_by(cm, xr.metadata.uid):
                plan.delete.append(("ConfigMap", meta["name"]))

    def samples(
        self, ns: str, name: str, rev: str, stable_rev: str | None
    ) -> tuple[dict[str, Sample], dict[str, Sample]]:
        """Counters of the ready canary pods (all theirs: they started with the rollout) and of
        the ready stable pods since the rollout began (their baseline is taken on first sight)."""
        base = self.baselines.setdefault((ns, name, rev), {})
        c_out: dict[str, Sample] = {}
        s_out: dict[str, Sample] = {}
        for pod in self.kube.list("Pod", ns, selector_string(name)):
            meta, st = pod["metadata"], pod.get("status", {})
            ip = st.get("podIP")
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or []
            )
            if not ip or not ready or meta.get("deletionTimestamp"):
                continue
            pod_rev = (meta.get("annotations") or {}).get(canary.REVISION_ANNOTATION)
            is_canary = pod_rev == rev  # the canary's or the preview's pods
            sample = self.scrape(ip, HTTP_PORT)
            if sample is None:
                continue
            if is_canary:
                c_out[meta["name"]] = sample
            elif pod_rev == stable_rev:
                first = base.setdefault(meta["name"], sample)
                s_out[meta["name"]] = sample - first
        return c_out, s_out
