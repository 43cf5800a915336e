"""Generate the XRouter CustomResourceDefinition from the pydantic models.

``xrouter-operator crd`` prints it; ``make crds`` writes ``crds/xrouter.io_xrouters.yaml``.

pydantic's JSON Schema is turned into a Kubernetes structural schema: ``$ref`` inlined,
``Optional`` unwrapped, ``title`` and ``additionalProperties: false`` dropped (unknown
fields are rejected by kubectl's strict field validation instead), draft-2020
``exclusiveMinimum`` turned into the OpenAPI v3.0 form. Defaults are kept only for
scalars that are not inside a list: a default inside a list item changes the stored
list, and Argo CD compares lists as a whole, so it would report OutOfSync forever.
"""

from __future__ import annotations

from typing import Any

import yaml

from .models import GROUP, KIND, PLURAL, VERSION, XRouterSpec, XRouterStatus


def _convert(node: Any, defs: dict[str, Any], in_list: bool) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise TypeError(f"unexpected schema node {node!r}")
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**target, **node}
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise TypeError(f"cannot express anyOf {options!r} in a structural schema")
        node = {**_resolve(options[0], defs), **node}
        return _convert(node, defs, in_list)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "$defs"):
            continue
        if key == "additionalProperties":
            if value is False:
                continue
            out[key] = _convert(value, defs, in_list)
        elif key == "properties":
            out[key] = {k: _convert(v, defs, in_list) for k, v in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs, True)
        elif key == "default":
            if not in_list and isinstance(value, str | int | float | bool) and value is not None:
                out[key] = value
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "properties" in out and "type" not in out:
        out["type"] = "object"
    return out


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        rest = dict(node)
        return {**defs[rest.pop("$ref").rsplit("/", 1)[-1]], **rest}
    return node


def _schema(model: type[XRouterSpec] | type[XRouterStatus]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _convert(raw, raw.get("$defs", {}), in_list=False)


def _sort(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _sort(node[k]) for k in sorted(node)}
    if isinstance(node, list):
        return [_sort(v) for v in node]
    return node


def build_crd() -> dict[str, Any]:
    """The CRD as a dict."""
    spec = _schema(XRouterSpec)
    status = _schema(XRouterStatus)
    ready = '.status.conditions[?(@.type=="Ready")]'
    schema = {
        "type": "object",
        "description": "XRouter runs an LLM router: an OpenAI-compatible gateway in front of providers.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        "required": ["spec"],
        "x-kubernetes-validations": [
            {
                "rule": "self.metadata.name.size() <= 40",
                "message": "metadata.name must be at most 40 characters (child objects add suffixes)",
            }
        ],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "xrouter", "app.kubernetes.io/part-of": "xrouter"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["xr"],
                "categories": ["all", "xrouter"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": _sort(schema)},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": [
                        {"name": "Ready", "type": "string", "jsonPath": f"{ready}.status"},
                        {"name": "Replicas", "type": "string", "jsonPath": ".status.replicaSummary"},
                        {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint"},
                        {"name": "Last Backup", "type": "date", "jsonPath": ".status.lastBackup.time"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                        {"name": "Message", "type": "string", "jsonPath": f"{ready}.message", "priority": 1},
                    ],
                }
            ],
        },
    }


def crd_yaml() -> str:
    header = "# Generated by `make crds` (xrouter-operator crd) from operator/xrouter_operator/models.py.\n"
    header += "# Do not edit by hand.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)
