"""The kind table is the one list of kinds: render, watches, prune, API paths and RBAC
all agree with it."""

from __future__ import annotations

from pathlib import Path

import kopf
import yaml
from xrouter_operator import handlers
from xrouter_operator.kinds import APPLIED, KINDS, PRUNABLE, WATCHED_CHILDREN, XROUTER, apply_order
from xrouter_operator.rbac import cluster_role
from xrouter_operator.render import RenderInputs, parse, render

FULL = Path(__file__).parent / "golden" / "full.input.yaml"


def _full_render() -> list[dict[str, object]]:
    docs = [d for d in yaml.safe_load_all(FULL.read_text()) if isinstance(d, dict)]
    xr = next(d for d in docs if d.get("kind") == "XRouter")
    present = frozenset({"ServiceMonitor", "PrometheusRule", "VerticalPodAutoscaler"})
    inputs = RenderInputs(admin_key="k", monitoring_kinds=present)
    return render(parse(xr), inputs)


def test_every_rendered_kind_is_in_the_table_in_apply_order() -> None:
    rendered = _full_render()
    kinds = [str(m["kind"]) for m in rendered]
    missing = [k for k in kinds if k not in KINDS or KINDS[k].order is None]
    assert not missing, f"rendered kinds missing from kinds.KINDS: {missing}"
    assert kinds == sorted(kinds, key=apply_order)
    for m in rendered:
        assert m["apiVersion"] == KINDS[str(m["kind"])].api_version, m["kind"]
    # The full spec renders every kind the table says it applies.
    assert set(kinds) == {k.kind for k in APPLIED}


def test_applied_kinds_are_watched_so_drift_is_undone() -> None:
    # Except the admin-key Secret: a watch would need list/watch on every Secret in the
    # cluster. Its drift is undone at the resync.
    assert [k.kind for k in APPLIED if not k.watched] == ["Secret"]
    assert [k.kind for k in PRUNABLE if not k.watched] == []


def test_the_operator_cannot_list_or_watch_secrets() -> None:
    for rule in cluster_role()["rules"]:
        if "" in rule["apiGroups"] and "secrets" in rule["resources"]:
            assert {"list", "watch"}.isdisjoint(rule["verbs"]), rule
    ids = {h.id for h in kopf.get_default_registry()._watching.get_all_handlers()}
    assert "child-secrets" not in ids


def test_children_are_watched_through_a_server_side_label_selector() -> None:
    settings = kopf.OperatorSettings()
    handlers.configure(settings)
    for k in WATCHED_CHILDREN:
        res = kopf.Resource(k.group, k.version, k.plural, kind=k.kind, namespaced=True, preferred=True)
        # What kopf puts in the watch request's labelSelector.
        assert settings.watching.label_selectors.collect(res) == [
            "app.kubernetes.io/managed-by=xrouter-operator,xrouter.io/instance"
        ], k.kind
    # The XRouters themselves are the users': no selector.
    xr = kopf.Resource(XROUTER.group, XROUTER.version, XROUTER.plural, kind="XRouter", namespaced=True)
    assert settings.watching.label_selectors.collect(xr) == []


def test_every_watched_child_has_an_event_handler() -> None:
    registry = kopf.get_default_registry()
    ids = {h.id for h in registry._watching.get_all_handlers()}
    for k in WATCHED_CHILDREN:
        assert f"child-{k.plural}" in ids, k.kind
    assert handlers.WATCHED_CHILDREN is WATCHED_CHILDREN


def test_rbac_grants_what_each_kind_needs() -> None:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in cluster_role()["rules"]:
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                granted.setdefault((group, res), set()).update(rule["verbs"])
    for k in KINDS.values():
        verbs = granted.get((k.group, k.plural), set())
        if k.order is not None:
            assert {"get", "create", "patch"} <= verbs, k.kind
        if k.watched:
            assert {"list", "watch"} <= verbs, k.kind
        if k.prune:
            assert {"list", "delete"} <= verbs, k.kind
    assert "delete" not in granted[("", "persistentvolumeclaims")]  # backups outlive the spec


def test_api_paths() -> None:
    assert KINDS["Deployment"].path("ns", "x") == "/apis/apps/v1/namespaces/ns/deployments/x"
    assert KINDS["Secret"].path("ns") == "/api/v1/namespaces/ns/secrets"
    assert KINDS["XRouter"].path("ns", "a") == "/apis/xrouter.io/v1alpha1/namespaces/ns/xrouters/a"
