"""charts/xrouter: lint, render, least-privilege RBAC equal to config/rbac, CRD equal to crds/.

Needs the helm binary that `make tools` builds (skips without it); the RBAC/CRD file checks don't.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging_helpers import CHART, REPO, parse_dockerfile, require_helm

ROLE = REPO / "config" / "rbac" / "role.yaml"
CRD = REPO / "crds" / "xrouter.io_xrouters.yaml"
# helm built from source (make tools) has no version stamped in, so its default --kube-version
# is v1.20.0, below the chart's kubeVersion; render for the control plane we test against.
KUBE_VERSION = ["--kube-version", "1.33.0"]
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([require_helm(), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def template(*args: str, release: str = "xrouter", namespace: str = "xrouter-system") -> list[dict[str, Any]]:
    out = helm("template", release, str(CHART), "--namespace", namespace, *KUBE_VERSION, *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deploy,) = by_kind(docs, "Deployment")
    (c,) = deploy["spec"]["template"]["spec"]["containers"]
    return c  # type: ignore[no-any-return]


# --- files that must equal their source of truth (no helm needed) ----------------------------------


def test_chart_role_is_config_rbac_role() -> None:
    if not ROLE.exists():
        pytest.skip("config/rbac/role.yaml (operator issue) not written yet")
    assert (CHART / "files" / "role.yaml").read_text() == ROLE.read_text(), (
        "charts/xrouter/files/role.yaml must be a symlink to config/rbac/role.yaml"
    )


def test_chart_crd_is_generated_crd() -> None:
    if not CRD.exists():
        pytest.skip("crds/xrouter.io_xrouters.yaml (operator issue) not generated yet")
    # A symlink to the generated file, so it can never go stale (Helm follows it, and
    # `helm package` stores the content).
    chart_crd = CHART / "crds" / "xrouter.io_xrouters.yaml"
    assert chart_crd.exists() and chart_crd.read_text() == CRD.read_text(), (
        "charts/xrouter/crds/xrouter.io_xrouters.yaml must be a symlink to crds/xrouter.io_xrouters.yaml"
    )


def test_rbac_has_no_wildcards() -> None:
    role = yaml.safe_load((CHART / "files" / "role.yaml").read_text())
    assert role["kind"] == "ClusterRole"
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            assert "*" not in rule.get(key, []), f"wildcard in {key}: {rule}"


# --- helm lint / template ---------------------------------------------------------------------------


def test_helm_lint_strict() -> None:
    helm("lint", "--strict", str(CHART))
    helm(
        "lint",
        "--strict",
        str(CHART),
        "--set",
        "operator.watchNamespaces={team-a,team-b}",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.grafanaDashboard.enabled=true",
    )


def test_default_render() -> None:
    docs = template()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "ServiceAccount"]
    (deploy,) = by_kind(docs, "Deployment")
    spec = deploy["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(docs)
    assert c["securityContext"] == RESTRICTED_CONTAINER
    assert (
        c["image"]
        == "ghcr.io/xrouter/xrouter-operator:"
        + yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    )
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    assert c["livenessProbe"]["httpGet"]["port"] == "health"
    assert "--all-namespaces" in c["args"]
    (svc,) = by_kind(docs, "Service")
    assert svc["spec"]["ports"][0]["targetPort"] == "metrics"
    assert svc["spec"]["selector"].items() <= deploy["spec"]["template"]["metadata"]["labels"].items()
    (sa,) = by_kind(docs, "ServiceAccount")
    (binding,) = by_kind(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "xrouter-system"}
    ]
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    # Release "xrouter" uses the same names as config/default.
    assert deploy["metadata"]["name"] == "xrouter-operator" == sa["metadata"]["name"]


def test_cluster_role_rules_equal_config_rbac() -> None:
    (role,) = by_kind(template(), "ClusterRole")
    source = yaml.safe_load((CHART / "files" / "role.yaml").read_text())
    assert role["rules"] == source["rules"]


def _resources(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def test_watch_namespaces_uses_roles() -> None:
    docs = template("--set", "operator.watchNamespaces={team-a,team-b}")
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in by_kind(docs, "RoleBinding")) == ["team-a", "team-b"]
    cluster_rules = [rule for r in by_kind(docs, "ClusterRole") for rule in r["rules"]]
    source = yaml.safe_load((CHART / "files" / "role.yaml").read_text())["rules"]
    # Together they grant exactly what config/rbac/role.yaml grants; nothing namespaced is cluster-wide.
    assert _resources(cluster_rules) | _resources(roles[0]["rules"]) == _resources(
        [r for r in source if "resources" in r]
    )
    cluster_scoped = {
        "customresourcedefinitions",
        "namespaces",
        "clusterkopfpeerings",
        "nodes",
        "persistentvolumes",
        "storageclasses",
        "priorityclasses",
    }
    for _, resource, _ in _resources(cluster_rules):
        assert resource.split("/")[0] in cluster_scoped, f"{resource} should be in a namespaced Role"
    args = container(docs)["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args and "--all-namespaces" not in args


def test_crds_are_included_only_from_crds_dir() -> None:
    if not (CHART / "crds" / "xrouter.io_xrouters.yaml").exists():
        pytest.skip("chart CRD not copied yet")
    docs = template("--include-crds")
    (crd,) = by_kind(docs, "CustomResourceDefinition")
    assert crd["metadata"]["name"] == "xrouters.xrouter.io"
    assert not by_kind(template(), "CustomResourceDefinition"), "the CRD must not be a template"


@pytest.mark.parametrize(
    "bad",
    [
        ["--set", "image.pullPolicy=Sometimes"],
        ["--set", "operator.watchNamespaces={Bad_Namespace}"],
        ["--set", "operator.logFormat=xml"],
        ["--set", "metrics.port=0"],
        ["--set", "notAValue=1"],
        ["--set", "image.digest=latest"],
    ],
)
def test_schema_rejects_bad_values(bad: list[str]) -> None:
    result = helm("template", "xrouter", str(CHART), *KUBE_VERSION, *bad, check=False)
    assert result.returncode != 0, f"accepted {bad}"
    assert "schema" in result.stderr.lower() or "values" in result.stderr.lower(), result.stderr


def test_image_digest_wins() -> None:
    digest = "sha256:" + "a" * 64
    assert container(template("--set", f"image.digest={digest}"))["image"].endswith("@" + digest)


def test_operator_container_matches_dockerfile_and_kustomize() -> None:
    c = container(template())
    assert "command" not in c, "the image's ENTRYPOINT (xrouter-operator run) must run"
    entry = parse_dockerfile(REPO / "Dockerfile.operator").final.exec_form("ENTRYPOINT")
    assert entry == ["xrouter-operator", "run"]
    manager = yaml.safe_load((REPO / "config" / "manager" / "manager.yaml").read_text())
    (k,) = manager["spec"]["template"]["spec"]["containers"]
    for key in (
        "args",
        "ports",
        "livenessProbe",
        "readinessProbe",
        "securityContext",
        "resources",
        "volumeMounts",
        "env",
    ):
        assert c.get(key) == k.get(key), f"chart and config/manager differ in container.{key}"
    assert k["image"].rsplit(":", 1)[0] == c["image"].rsplit(":", 1)[0]


def test_chart_readme_explains_crd_upgrades() -> None:
    text = (CHART / "README.md").read_text()
    assert "crds/" in text and "upgrade" in text.lower()


def test_operator_flags_exist() -> None:
    """Every flag the manifests pass to `xrouter-operator run` is one it accepts."""
    from packaging_helpers import run

    if not (REPO / "operator" / "xrouter_operator" / "cli.py").exists():
        pytest.skip("operator CLI not written yet")
    exe = Path(__import__("sys").executable).parent / "xrouter-operator"
    help_text = run([str(exe), "run", "--help"]).stdout
    manager = yaml.safe_load((REPO / "config" / "manager" / "manager.yaml").read_text())
    args = manager["spec"]["template"]["spec"]["containers"][0]["args"] + ["--namespace=x"]
    for arg in args:
        flag = arg.split("=", 1)[0]
        assert flag in help_text, f"`xrouter-operator run` has no {flag}:\n{help_text}"


def test_service_monitor_keeps_operator_namespace_label() -> None:
    docs = template("--set", "metrics.serviceMonitor.enabled=true")
    (monitor,) = by_kind(docs, "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["honorLabels"] is True


def test_existing_service_account_needs_a_name() -> None:
    result = helm(
        "template", "xrouter", str(CHART), *KUBE_VERSION, "--set", "serviceAccount.create=false", check=False
    )
    assert result.returncode != 0 and "serviceAccount.name is required" in result.stderr
    docs = template("--set", "serviceAccount.create=false", "--set", "serviceAccount.name=platform-sa")
    assert not by_kind(docs, "ServiceAccount")
    (binding,) = by_kind(docs, "ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == "platform-sa"


def test_kube_version_floor() -> None:
    result = helm("template", "xrouter", str(CHART), "--kube-version", "1.27.0", check=False)
    assert result.returncode != 0 and "kubeVersion" in result.stderr


def test_chart_ships_the_same_alerts_and_dashboard() -> None:
    docs = template(
        "--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.grafanaDashboard.enabled=true"
    )
    (rule,) = by_kind(docs, "PrometheusRule")
    source = yaml.safe_load((REPO / "config" / "prometheus" / "rules.yaml").read_text())
    assert rule["spec"] == source["spec"]
    (dashboard,) = by_kind(docs, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["xrouter.json"]) == json.loads(
        (REPO / "config" / "grafana" / "xrouter.json").read_text()
    )
    assert not by_kind(template(), "PrometheusRule"), "off by default: needs the Prometheus Operator CRDs"
