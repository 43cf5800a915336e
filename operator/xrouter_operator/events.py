"""The Kubernetes Events an XRouter's reconcile posts: which status transitions deserve one
(pure), and the Event object for each. Posting them is the reconciler's job."""

from __future__ import annotations

from typing import Any

from .models import API_VERSION, KIND
from .naming import MANAGER
from .status import condition

Obj = dict[str, Any]
Event = tuple[str, str, str]  # type, reason, message


def _condition(status: Obj | None, type_: str) -> tuple[str, str, str]:
    c = condition((status or {}).get("conditions") or [], type_) or {}
    return c.get("status", ""), c.get("reason", ""), c.get("message", "")


def backup_events(old: Obj | None, new: Obj) -> list[Event]:
    """A Warning when status.lastBackup turns to a new failure (`kubectl describe` shows it
    beside the Job's own BackoffLimitExceeded); its message is the script's, never a secret."""
    before, after = (old or {}).get("lastBackup") or {}, new.get("lastBackup") or {}
    if after.get("result") != "Failed" or after == before:
        return []
    return [("Warning", "BackupFailed", str(after.get("message", "")))]


def transition_events(old: Obj | None, new: Obj, writes: list[str], extra: list[Event]) -> list[Event]:
    """One event per change a user should hear about, only when it changes (a status that
    stays Degraded posts one Warning, not one per reconcile)."""
    events: list[Event] = [*extra, *backup_events(old, new)]
    if writes:
        events.append(("Normal", "Applied", ", ".join(writes)[:1000]))
    before, after = _condition(old, "Degraded"), _condition(new, "Degraded")
    if after[0] == "True" and after != before:
        events.append(("Warning", after[1], after[2]))
    p_before, p_after = _condition(old, "Progressing"), _condition(new, "Progressing")
    if p_after[1] == "Suspended" and p_before[1] != "Suspended":
        events.append(("Normal", "Suspended", p_after[2]))
    r_before, r_after = _condition(old, "Ready"), _condition(new, "Ready")
    if r_after[0] != r_before[0] and r_after[0]:
        calm = r_after[0] == "True" or r_after[1] == "ScaledToZero"  # scaling to 0 is a choice
        events.append(("Normal" if calm else "Warning", "Ready" + r_after[0], r_after[2]))
    return events


def event_object(meta: Obj, event: Event, host: str, now: str) -> Obj:
    type_, reason, message = event
    return {
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "type": type_,
        "reason": reason,
        "message": message,
        "source": {"component": MANAGER},
        "reportingComponent": MANAGER,
        "reportingInstance": host,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
