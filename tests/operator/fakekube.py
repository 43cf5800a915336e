"""An in-memory stand-in for xrouter_operator.kube.Kube, enough for reconcile tests."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from xrouter_operator.kube import KubeError

Obj = dict[str, Any]
_uid = itertools.count(1)


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(patch)


class FakeKube:
    def __init__(self, kinds: frozenset[str] = frozenset()) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.events: list[Obj] = []
        self.monitoring = kinds

    def put(self, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{next(_uid)}")
        meta.setdefault("namespace", "ns")
        meta.setdefault("generation", 1)
        self.objects[(obj["kind"], meta["namespace"], meta["name"])] = obj
        return obj

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        obj = self.objects.get((kind, namespace, name))
        return copy.deepcopy(obj) if obj else None

    def list(self, kind: str, namespace: str, label_selector: str) -> list[Obj]:
        want = dict(part.split("=", 1) for part in label_selector.split(","))
        return [
            copy.deepcopy(o)
            for (k, ns, _), o in self.objects.items()
            if k == kind
            and ns == namespace
            and all(o["metadata"].get("labels", {}).get(a) == b for a, b in want.items())
        ]

    def apply(self, manifest: Obj, *, force: bool) -> Obj:
        meta = manifest["metadata"]
        self.writes.append(("apply", manifest["kind"], meta["name"]))
        key = (manifest["kind"], meta["namespace"], meta["name"])
        live = self.objects.get(key)
        if live is None:
            return self.put(manifest)
        merged = _merge(live, manifest)
        if merged.get("spec") != live.get("spec"):
            merged["metadata"]["generation"] = live["metadata"]["generation"] + 1
        self.objects[key] = merged
        return copy.deepcopy(merged)

    def delete(self, kind: str, namespace: str, name: str, uid: str) -> None:
        self.writes.append(("delete", kind, name))
        if self.objects.get((kind, namespace, name), {}).get("metadata", {}).get("uid") != uid:
            raise KubeError(409, "Conflict", "uid precondition")
        del self.objects[(kind, namespace, name)]

    def patch_status(self, namespace: str, name: str, status: Obj) -> None:
        self.writes.append(("status", "XRouter", name))
        obj = self.objects[("XRouter", namespace, name)]
        obj["status"] = {k: v for k, v in _merge(obj.get("status") or {}, status).items() if v is not None}

    def create_event(self, namespace: str, event: Obj) -> None:
        self.writes.append(("event", event["reason"], event["message"]))
        self.events.append(event)

    def api_resources(self, group_version: str) -> set[str]:
        return set(self.monitoring)
