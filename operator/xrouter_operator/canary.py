"""The pure half of a canary rollout: versioned config, the canary Deployment, the split.

With ``spec.rollout.strategy: canary`` the config is not one ConfigMap that every pod
hot-reloads: each config gets its own ``NAME-config-<hash>``, and the pod template names
it, so a config change is a new pod template like an image change, and the canary pods
read the new config while the stable pods keep reading the old one. The pod template
carries its own hash (``xrouter.io/revision``): the stable Deployment's live template
says which version is stable, the rendered one which version is wanted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from typing import Any

from .models import XRouter
from .naming import config_map_name

Manifest = dict[str, Any]
REVISION_ANNOTATION = "xrouter.io/revision"
TRACK_LABEL = "xrouter.io/track"
REVISION_LABEL = "xrouter.io/revision"
CONFIG_VERSION_LABEL = "xrouter.io/config-version"


def digest(obj: Any, n: int = 10) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:n]


def canary_name(name: str) -> str:
    return f"{name}-canary"


def versioned(xr: XRouter, manifests: list[Manifest], *, label: bool = False) -> list[Manifest]:
    """The manifests with the ConfigMap named by its content and the pod template stamped
    with its revision (``label``: as a pod label too, which blue-green's Services select)."""
    name = xr.metadata.name
    out = copy.deepcopy(manifests)
    cm = next(m for m in out if m["kind"] == "ConfigMap" and m["metadata"]["name"] == config_map_name(name))
    version = digest(cm["data"])
    cm["metadata"]["name"] = f"{config_map_name(name)}-{version}"
    cm["metadata"]["labels"][CONFIG_VERSION_LABEL] = version
    dep = next(m for m in out if m["kind"] == "Deployment" and m["metadata"]["name"] == name)
    template = dep["spec"]["template"]
    for vol in template["spec"]["volumes"]:
        if vol.get("configMap", {}).get("name") == config_map_name(name):
            vol["configMap"]["name"] = cm["metadata"]["name"]
    rev = digest(template)
    template["metadata"]["annotations"][REVISION_ANNOTATION] = rev
    if label:
        template["metadata"]["labels"][REVISION_LABEL] = rev
    return out


def revision(dep: Manifest | None) -> str | None:
    if dep is None:
        return None
    annotations = dep.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
    rev = annotations.get(REVISION_ANNOTATION)
    return str(rev) if rev else None


def split(replicas: int, weight: int) -> tuple[int, int]:
    """(canary, stable) pods for a step: at least one of each, about ``weight`` percent canary
    and never more than replicas + 1 pods in all (the approximation Argo Rollouts makes
    without a traffic router: the Service spreads requests over ready pods)."""
    canary = max(1, math.ceil(replicas * weight / 100))
    stable = max(1, replicas - math.floor(replicas * weight / 100))
    return canary, stable


def canary_deployment(new: Manifest, replicas: int) -> Manifest:
    """The new version's Deployment beside the stable one: its own name and a selector that
    only its pods match; the pods keep the labels the Service selects."""
    m = copy.deepcopy(new)
    m["metadata"]["name"] = canary_name(new["metadata"]["name"])
    m["spec"]["replicas"] = replicas
    m["spec"]["selector"]["matchLabels"][TRACK_LABEL] = "canary"
    m["spec"]["template"]["metadata"]["labels"][TRACK_LABEL] = "canary"
    return m


def stable_deployment(new: Manifest, live: Manifest, replicas: int) -> Manifest:
    """The rendered Deployment, but with the live (stable) pod template: everything else
    follows the spec while the new template waits for its canary to pass."""
    m = copy.deepcopy(new)
    template = copy.deepcopy(live["spec"]["template"])
    template.get("metadata", {}).pop("creationTimestamp", None)
    m["spec"]["template"] = template
    m["spec"]["replicas"] = replicas
    return m


def config_maps_in_use(*deps: Manifest | None) -> set[str]:
    out = set()
    for dep in deps:
        for vol in (dep or {}).get("spec", {}).get("template", {}).get("spec", {}).get("volumes") or []:
            if "configMap" in vol:
                out.add(vol["configMap"]["name"])
    return out
