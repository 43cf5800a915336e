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


def _json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies a merge patch: null removes a key, at any depth."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _json_merge_patch(out.get(k), v)
    return out


class FakeKube:
    def __init__(self, kinds: frozenset[str] = frozenset()) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.events: list[Obj] = []
        self.monitoring = kinds
        self.replica_owners: dict[tuple[str, str, str], set[str]] = {}

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

    def apply(self, manifest: Obj, *, force: bool, manager: str = "xrouter-operator") -> Obj:
        meta = manifest["metadata"]
        self.writes.append(("apply", manifest["kind"], meta["name"]))
        key = (manifest["kind"], meta["namespace"], meta["name"])
        live = self.objects.get(key)
        if live is None:
            obj = self.put(manifest)
            self._own_replicas(key, manifest, manager, force)
            return copy.deepcopy(self.objects[key])
        self._own_replicas(key, manifest, manager, force)
        merged = _merge(self.objects[key], manifest)
        if "ownerReferences" not in meta:
            # Server-side apply removes a field its only manager no longer applies.
            merged["metadata"].pop("ownerReferences", None)
        if merged.get("spec") != live.get("spec"):
            merged["metadata"]["generation"] = live["metadata"]["generation"] + 1
        self.objects[key] = merged
        obj = merged
        return copy.deepcopy(obj)

    # Server-side apply's ownership of Deployment spec.replicas, as the API server keeps it:
    # a field no manager applies any more is removed (and then defaults to 1).
    def _own_replicas(self, key: tuple[str, str, str], manifest: Obj, manager: str, force: bool) -> None:
        if key[0] != "Deployment":
            return
        owners = self.replica_owners.setdefault(key, set())
        live = self.objects[key]
        want = manifest.get("spec", {}).get("replicas")
        if want is not None:
            have = live.get("spec", {}).get("replicas")
            others = owners - {manager}
            if others and have != want and not force:
                raise KubeError(409, "Conflict", f"conflict with {sorted(others)}: .spec.replicas")
            owners.add(manager)
            if have != want:
                owners.intersection_update({manager})
        elif manager in owners:
            owners.discard(manager)
            if not owners:
                live["spec"]["replicas"] = 1
        live["metadata"]["managedFields"] = [
            {"manager": m, "operation": "Update" if m == "kube-controller-manager" else "Apply",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}}
            for m in sorted(owners)
        ]  # fmt: skip

    def hpa_scales(self, namespace: str, name: str, replicas: int) -> None:
        """The HPA controller writes the scale subresource (an Update: it takes the field)."""
        key = ("Deployment", namespace, name)
        self.objects[key]["spec"]["replicas"] = replicas
        self.replica_owners[key] = {"kube-controller-manager"}
        self._own_replicas(key, {"spec": {}}, "nobody", False)

    def delete(self, kind: str, namespace: str, name: str, uid: str) -> None:
        self.writes.append(("delete", kind, name))
        if self.objects.get((kind, namespace, name), {}).get("metadata", {}).get("uid") != uid:
            raise KubeError(409, "Conflict", "uid precondition")
        del self.objects[(kind, namespace, name)]

    def patch_status(self, namespace: str, name: str, status: Obj) -> None:
        self.writes.append(("status", "XRouter", name))
        obj = self.objects[("XRouter", namespace, name)]
        obj["status"] = _json_merge_patch(obj.get("status") or {}, status)

    def create_event(self, namespace: str, event: Obj) -> None:
        self.writes.append(("event", event["reason"], event["message"]))
        self.events.append(event)

    def api_resources(self, group_version: str) -> set[str]:
        return set(self.monitoring)
