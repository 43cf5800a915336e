"""One reconcile of one XRouter: read -> render (pure) -> apply what drifted -> prune -> status.

Synchronous; the kopf glue runs it in a thread. Every write goes through :class:`Kube`,
which counts it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import metrics
from .apply import adoptable, drops_owner, first_difference, owned_by
from .events import event_object, transition_events
from .handover import hand_over_replicas
from .kinds import GATING_KINDS, KINDS, OPTIONAL_KINDS, PRUNABLE, WORKLOAD_KINDS
from .kube import Kube, KubeError
from .models import XRouter, secret_refs
from .naming import (
    ADMIN_KEY_FIELD,
    INSTANCE_LABEL,
    ROTATE_ANNOTATION,
    ROTATION_ANNOTATION,
    admin_secret_name,
    backup_cronjob_name,
    children_selector,
    endpoint,
    selector_string,
)
from .parsing import RenderError, parse
from .policy import ServiceFacts, service_facts, upstream_services
from .render import RenderInputs, render
from .rollout import Rollouts, with_conditions
from .rolloutplan import Plan
from .status import (
    Observed,
    Problems,
    backup_facts,
    compute_status,
    container_restarts,
    status_patch,
)
from .vpa import vpa_condition

log = logging.getLogger("xrouter_operator")

Obj = dict[str, Any]


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Outcome:
    result: str  # success | error | skipped
    retry: bool = False
    status: Obj | None = None
    writes: list[str] = field(default_factory=list)
    # The XRouter does not exist (any more): the queue drops the key.
    gone: bool = False
    # Look again after this many seconds (a canary step under analysis), not as a failure.
    requeue_after: float | None = None


def _digest(obj: Obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        *,
        clock: Callable[[], str] = utcnow,
        new_key: Callable[[], str] = lambda: secrets.token_urlsafe(32),
    ) -> None:
        self.kube = kube
        self.clock = clock
        self.new_key = new_key
        # Objects whose rendered form reads back differently right after we applied it:
        # comparing them would re-apply forever, so they are compared by digest only.
        self._blind: set[tuple[str, str, str, str]] = set()
        self._monitoring: tuple[float, frozenset[str]] = (0.0, frozenset())
        self._host = socket.gethostname()
        self.rollouts = Rollouts(kube)

    # ------------------------------------------------------------------ inputs

    def monitoring_kinds(self) -> frozenset[str]:
        """The optional kinds whose CRDs are installed (Prometheus operator's, the VPA's),
        looked up at most once a minute."""
        at, kinds = self._monitoring
        if time.monotonic() - at > 60:
            groups = sorted({KINDS[k].api_version for k in OPTIONAL_KINDS})
            found: set[str] = set()
            for gv in groups:
                found |= self.kube.api_resources(gv) & {
                    k for k in OPTIONAL_KINDS if KINDS[k].api_version == gv
                }
            kinds = frozenset(found)
            self._monitoring = (time.monotonic(), kinds)
        return kinds

    def _inputs(self, xr: XRouter) -> RenderInputs:
        ns, uid = xr.metadata.namespace, xr.metadata.uid
        want = xr.metadata.annotations.get(ROTATE_ANNOTATION, "")
        key = ""
        sec = self.kube.get("Secret", ns, admin_secret_name(xr.metadata.name))
        if sec is not None and owned_by(sec, uid):
            have = (sec.get("metadata", {}).get("annotations") or {}).get(ROTATION_ANNOTATION, "")
            raw = (sec.get("data") or {}).get(ADMIN_KEY_FIELD, "")
            if have == want and raw:
                key = base64.b64decode(raw).decode()
        if not key:
            key = self.new_key()
        return RenderInputs(
            admin_key=key,
            admin_key_rotation=want,
            monitoring_kinds=self.monitoring_kinds(),
            services=self._upstream_services(xr) if xr.spec.network_policy.enabled else {},
            operator_namespace=os.environ.get("POD_NAMESPACE") or None,
        )

    def _upstream_services(self, xr: XRouter) -> dict[str, ServiceFacts]:
        """The cluster Services the upstream URLs name (a read per URL and reconcile; a
        change to one is seen at the next resync, as we do not watch other Services)."""
        out: dict[str, ServiceFacts] = {}
        for ns, name in sorted(upstream_services(xr)):
            try:
                svc = self.kube.get("Service", ns, name)
            except KubeError as e:
                if e.status != 403:
                    raise
                log.warning("may not read Service %s/%s for the NetworkPolicy: %s", ns, name, e)
                continue
            facts = service_facts(svc) if svc is not None else None
            if facts is not None:
                out[f"{ns}/{name}"] = facts
        return out

    # ------------------------------------------------------------------ reconcile

    def reconcile(self, namespace: str, name: str) -> Outcome:
        body = self.kube.get("XRouter", namespace, name)
        if body is None:
            metrics.forget(namespace, name)
            return Outcome("skipped", gone=True)
        if body.get("metadata", {}).get("deletionTimestamp"):
            # Being deleted (someone else's finalizer): its DELETED event forgets the key.
            metrics.forget(namespace, name)
            return Outcome("skipped")
        meta = body["metadata"]
        uid, generation = meta["uid"], int(meta.get("generation", 0))
        raw_spec = body.get("spec") or {}
        suspend = bool(raw_spec.get("suspend", False))
        old_status = body.get("status")
        conflicts: list[str] = []
        errors: list[str] = []
        invalid: str | None = None
        writes: list[str] = []
        live: dict[tuple[str, str], Obj | None] = {}
        foreign: set[tuple[str, str]] = set()

        xr: XRouter | None = None
        plan: Plan | None = None
        try:
            xr = parse(body)
        except RenderError as e:
            invalid = str(e)

        if xr is not None and not suspend:
            inputs = self._inputs(xr)
            try:
                desired = render(xr, inputs)
            except RenderError as e:
                invalid, desired = str(e), []
            except Exception as e:  # a bug in a builder: still a condition and an event, not a crash loop
                log.exception("render of %s/%s failed", namespace, name)
                invalid, desired = f"the operator could not render this spec ({type(e).__name__}: {e})", []
            if invalid is None and desired:
                plan = self.rollouts.plan(xr, desired, old_status, self.clock())
                desired = plan.desired
            blocked = False
            for m in desired:
                kind, mname = m["kind"], m["metadata"]["name"]
                if blocked and kind in WORKLOAD_KINDS:
                    errors.append(f"{kind} {mname} not applied until the conflicts above are resolved")
                    continue
                try:
                    obj = self.kube.get(kind, namespace, mname)
                    if obj is not None and not self._ours(m, obj, uid):
                        foreign.add((kind, mname))
                        conflicts.append(
                            f"{kind} {mname} exists and is not owned by this XRouter; left untouched"
                        )
                        blocked = blocked or kind in GATING_KINDS
                        continue
                    if kind == "Deployment" and xr.spec.autoscaling.enabled:
                        obj = hand_over_replicas(self.kube, m, obj, xr.spec.autoscaling.min_replicas, writes)
                    live[(kind, mname)] = self._apply(m, obj, writes)
                except KubeError as e:
                    if e.status >= 500 or e.status in (401, 403, 429):
                        raise
                    errors.append(f"{kind} {mname}: {e.reason or e.status}: {e.message}"[:300])
            if invalid is None:
                self._prune(
                    namespace, name, uid, {(m["kind"], m["metadata"]["name"]) for m in desired}, writes
                )
            if plan is not None and not blocked:
                self.rollouts.delete(namespace, plan, writes)

        missing = self._missing_secrets(xr) if xr is not None else []
        observed = self._observe(namespace, name, uid, live, foreign)
        vpa_c = vpa_condition(xr, "VerticalPodAutoscaler" in self.monitoring_kinds()) if xr else None
        computed = compute_status(
            generation=generation,
            suspend=suspend,
            old=old_status,
            observed=observed,
            problems=Problems(
                invalid=invalid, conflicts=conflicts, apply_errors=errors, missing_secrets=missing
            ),
            endpoint=endpoint(xr) if xr else "",
            selector=selector_string(name),
            now=self.clock(),
            min_replicas=xr.spec.autoscaling.min_replicas if xr and xr.spec.autoscaling.enabled else None,
            extra=[("VerticalAutoscaling", vpa_c)] if vpa_c else [],
        )
        status = with_conditions(computed, plan, old_status, self.clock()).wire()
        patch = status_patch(old_status, status)
        if patch is not None:
            self.kube.patch_status(namespace, name, patch)
        self._events(body, old_status, status, writes, plan.events if plan else [])
        self._gauges(namespace, name, status, observed)
        if errors:
            return Outcome("error", retry=True, status=status, writes=writes)
        result = "skipped" if suspend or invalid else "success"
        # A foreign object going away or a Secret appearing makes no event we watch: look
        # again later (reads only).
        requeue = plan.requeue_after if plan else None
        return Outcome(result, bool(conflicts or missing), status, writes, requeue_after=requeue)

    def _missing_secrets(self, xr: XRouter) -> list[str]:
        """Referenced Secrets or keys that do not exist (names only; values are never read out)."""
        secrets_: dict[str, Obj | None] = {}
        missing = []
        for path, ref in secret_refs(xr.spec):
            if ref.name not in secrets_:
                secrets_[ref.name] = self.kube.get("Secret", xr.metadata.namespace, ref.name)
            sec = secrets_[ref.name]
            if sec is None:
                missing.append(f"{path}: Secret {ref.name} not found")
            elif ref.key not in (sec.get("data") or {}):
                missing.append(f"{path}: Secret {ref.name} has no key {ref.key}")
        return missing

    @staticmethod
    def _ours(m: Obj, obj: Obj, uid: str) -> bool:
        # A backup PVC is ours by its labels when nobody controls it: the claim a deleted
        # XRouter of the same name retained is adopted (and owned again with whenDeleted: Delete).
        if m["kind"] == "PersistentVolumeClaim" and adoptable(obj, m["metadata"]["labels"]):
            return True
        return owned_by(obj, uid)

    def _apply(self, m: Obj, obj: Obj | None, writes: list[str]) -> Obj:
        kind, meta = m["kind"], m["metadata"]
        key = (meta["namespace"], kind, meta["name"], _digest(m))
        unchanged = key in self._blind or (obj is not None and first_difference(m, obj) is None)
        if obj is not None and unchanged and not drops_owner(m, obj):
            return obj
        if obj is not None:
            log.info(
                "drift in %s %s/%s at %s", kind, meta["namespace"], meta["name"], first_difference(m, obj)
            )
        out = self.kube.apply(m, force=obj is not None)
        writes.append(f"{'updated' if obj is not None else 'created'} {kind} {meta['name']}")
        diff = first_difference(m, out)
        if diff is not None:
            log.warning(
                "%s %s reads back differently at %s after apply; compared by digest from now",
                kind,
                meta["name"],
                diff,
            )
            self._blind.add(key)
        return out

    def _prune(
        self, namespace: str, name: str, uid: str, desired: set[tuple[str, str]], writes: list[str]
    ) -> None:
        sel = children_selector(name)
        present = self.monitoring_kinds()
        for kind in [k.kind for k in PRUNABLE if not k.optional or k.kind in present]:
            for obj in self.kube.list(kind, namespace, sel):
                m = obj["metadata"]
                if owned_by(obj, uid) and (kind, m["name"]) not in desired:
                    self.kube.delete(kind, namespace, m["name"], m["uid"])
                    writes.append(f"deleted {kind} {m['name']}")

    def _observe(
        self,
        namespace: str,
        name: str,
        uid: str,
        live: dict[tuple[str, str], Obj | None],
        foreign: set[tuple[str, str]],
    ) -> Observed:
        def owned(kind: str, oname: str) -> Obj | None:
            if (kind, oname) in foreign:
                return None
            obj = live[(kind, oname)] if (kind, oname) in live else self.kube.get(kind, namespace, oname)
            return obj if obj is not None and owned_by(obj, uid) else None

        dep = owned("Deployment", name)
        cron = owned("CronJob", backup_cronjob_name(name))
        jobs: list[Obj] = []
        if cron is not None:
            cuid = cron["metadata"]["uid"]
            jobs = [
                j
                for j in self.kube.list(
                    "Job", namespace, f"{INSTANCE_LABEL}={name},app.kubernetes.io/component=backup"
                )
                if owned_by(j, cuid)
            ]
        # The Jobs' pods: their termination messages name the object written, or the failure.
        backup_pods = (
            self.kube.list("Pod", namespace, f"{INSTANCE_LABEL}={name},app.kubernetes.io/component=backup")
            if jobs
            else []
        )
        pods = self.kube.list("Pod", namespace, selector_string(name)) if dep is not None else []
        return Observed(deployment=dep, cronjob=cron, jobs=jobs, pods=pods, backup_pods=backup_pods)

    def _events(
        self, body: Obj, old: Obj | None, new: Obj, writes: list[str], extra: list[tuple[str, str, str]]
    ) -> None:
        meta = body["metadata"]
        now = self.clock()
        for event in transition_events(old, new, writes, extra):
            try:
                self.kube.create_event(meta["namespace"], event_object(meta, event, self._host, now))
            except KubeError as e:
                log.warning("could not post event %s: %s", event[1], e)

    def _gauges(self, namespace: str, name: str, status: Obj, observed: Observed) -> None:
        ready_c: Obj = next((c for c in status["conditions"] if c["type"] == "Ready"), {})
        if ready_c.get("reason") == "ScaledToZero":
            # Scaled to 0 on purpose: no series, so the XRouterNotReady alert stays quiet.
            with contextlib.suppress(KeyError):
                metrics.READY.remove(namespace, name)
        else:
            metrics.READY.labels(namespace, name).set(1 if ready_c.get("status") == "True" else 0)
        metrics.ROUTER_RESTARTS.labels(namespace, name).set(container_restarts(observed.pods))
        facts = backup_facts(observed.cronjob, observed.jobs)
        if facts.last_success_time:
            ts = (
                datetime.strptime(facts.last_success_time, "%Y-%m-%dT%H:%M:%SZ")
                .replace(tzinfo=UTC)
                .timestamp()
            )
            metrics.BACKUP_LAST_SUCCESS.labels(namespace, name).set(ts)
        metrics.BACKUP_LAST_FAILED.labels(namespace, name).set(1 if facts.last_result == "Failed" else 0)
