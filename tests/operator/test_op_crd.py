"""The generated CRD and ClusterRole are fresh, structural and complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from xrouter_operator.crd import build_crd, crd_yaml
from xrouter_operator.rbac import role_yaml

ROOT = Path(__file__).resolve().parents[2]


def test_crd_file_is_fresh() -> None:
    path = ROOT / "crds" / "xrouter.io_xrouters.yaml"
    assert path.read_text() == crd_yaml(), "crds/ is stale: run `make crds`"


def test_role_file_is_fresh() -> None:
    path = ROOT / "config" / "rbac" / "role.yaml"
    assert path.read_text() == role_yaml(), "config/rbac/role.yaml is stale: run `make crds`"


def test_role_has_no_wildcards() -> None:
    role = yaml.safe_load(role_yaml())
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key]


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    if isinstance(node, dict):
        out.append((path, node))
        for k, v in node.get("properties", {}).items():
            out += _walk(v, f"{path}.{k}")
        if "items" in node:
            out += _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            out += _walk(node["additionalProperties"], f"{path}{{}}")
    return out


def test_schema_is_structural() -> None:
    version = build_crd()["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        for banned in ("$ref", "anyOf", "oneOf", "allOf", "title", "const", "$defs"):
            assert banned not in node, f"{path} has {banned}"
        assert node.get("additionalProperties") is not False, path
        if "x-kubernetes-int-or-string" not in node and "x-kubernetes-preserve-unknown-fields" not in node:
            assert "type" in node, f"{path} has no type"
        if "default" in node:
            assert "[]" not in path, f"{path}: no defaults inside lists (Argo CD diff)"


def test_crd_names_subresources_columns() -> None:
    crd = build_crd()
    spec = crd["spec"]
    assert spec["group"] == "xrouter.io" and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "XRouter" and spec["names"]["shortNames"] == ["xr"]
    v = spec["versions"][0]
    assert v["name"] == "v1alpha1"
    assert v["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    assert "status" in v["subresources"]
    cols = {c["name"]: c for c in v["additionalPrinterColumns"]}
    assert list(cols) == ["Ready", "Replicas", "Endpoint", "Last Backup", "Age", "Message"]
    assert cols["Message"]["priority"] == 1
    rules = [
        r["rule"]
        for _, n in _walk(v["schema"]["openAPIV3Schema"])
        for r in n.get("x-kubernetes-validations", [])
    ]
    assert len(rules) >= 8
    props = v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert props["providers"]["x-kubernetes-list-map-keys"] == ["name"]
    assert props["models"]["items"]["properties"]["targets"]["items"]["properties"]["weight"]["minimum"] == 0
