"""The Grafana dashboard and the PrometheusRule name only metrics the router or operator export.

Metric names come from the live registries (xrouter_router.metrics, xrouter_operator.metrics).
Only while the operator's metrics module does not exist yet, its names fall back to the documented
contract (CONTRACT below), with a warning.
"""

from __future__ import annotations

import importlib
import json
import re
import warnings
from collections.abc import Iterator
from typing import Any

import promql_parser
import pytest
import yaml
from packaging_helpers import REPO
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

RULES = REPO / "config" / "prometheus" / "rules.yaml"
DASHBOARD = REPO / "config" / "grafana" / "xrouter.json"

# The metric contract from issue 5's brief, used only as a fallback for a module not written yet.
CONTRACT = {
    "xrouter_router.metrics": {
        "counter": [
            "xrouter_requests",
            "xrouter_tokens",
            "xrouter_cost_usd",
            "xrouter_retries",
            "xrouter_fallbacks",
            "xrouter_limit_rejections",
            "xrouter_usage_rows_written",
            "xrouter_config_reloads",
        ],
        "histogram": [
            "xrouter_request_duration_seconds",
            "xrouter_upstream_duration_seconds",
            "xrouter_overhead_seconds",
            "xrouter_time_to_first_token_seconds",
        ],
        "gauge": [
            "xrouter_inflight_requests",
            "xrouter_breaker_state",
            "xrouter_usage_buffer_rows",
            "xrouter_redis_up",
            "xrouter_database_up",
        ],
    },
    "xrouter_operator.metrics": {
        "counter": ["xrouter_operator_reconciles", "xrouter_operator_errors", "xrouter_operator_api_writes"],
        "histogram": ["xrouter_operator_reconcile_duration_seconds"],
        "gauge": [
            "xrouter_operator_xrouter_ready",
            "xrouter_operator_backup_last_success_timestamp_seconds",
            "xrouter_operator_backup_last_failed",
            "xrouter_operator_router_container_restarts",
        ],
    },
}

SUFFIXES = {
    "counter": ["_total"],
    "histogram": ["_bucket", "_sum", "_count"],
    "gaugehistogram": ["_bucket", "_gsum", "_gcount"],
    "summary": ["", "_sum", "_count"],
    "gauge": [""],
    "info": ["_info"],
    "stateset": [""],
    "enum": [""],
    "unknown": [""],
}


def _sample_names(kind: str, name: str) -> set[str]:
    if kind == "counter":
        name = name.removesuffix("_total")
    return {name + suffix for suffix in SUFFIXES.get(kind, [""])}


def _registries(module: Any) -> Iterator[CollectorRegistry | MetricWrapperBase]:
    """Registries a metrics module owns: module-level registries/metrics, or a class that builds one."""
    for value in vars(module).values():
        if isinstance(value, (CollectorRegistry, MetricWrapperBase)):
            yield value
        elif isinstance(value, type) and value.__module__ == module.__name__:
            try:
                instance = value()
            except Exception:
                continue
            registry = getattr(instance, "registry", None)
            if isinstance(registry, CollectorRegistry):
                yield registry
    yield REGISTRY  # metrics registered on the default registry at import


def exported(module_name: str) -> set[str]:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise
        warnings.warn(
            f"{module_name} does not exist yet: checking against the documented contract", stacklevel=1
        )
        return {
            s for kind, names in CONTRACT[module_name].items() for n in names for s in _sample_names(kind, n)
        }
    names: set[str] = set()
    for source in _registries(module):
        families = source.describe() if isinstance(source, MetricWrapperBase) else source.collect()
        for family in families:
            if family.name.startswith("xrouter_"):
                names |= _sample_names(family.type, family.name)
    assert names, f"{module_name} exports no xrouter_* metric that this test can find"
    return names


@pytest.fixture(scope="module")
def exported_names() -> set[str]:
    return exported("xrouter_router.metrics") | exported("xrouter_operator.metrics")


# --- PromQL ------------------------------------------------------------------------------------------

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def _selectors(node: Any) -> Iterator[promql_parser.VectorSelector]:
    if isinstance(node, promql_parser.VectorSelector):
        yield node
    elif isinstance(node, promql_parser.MatrixSelector):
        yield node.vector_selector
    elif isinstance(node, promql_parser.BinaryExpr):
        yield from _selectors(node.lhs)
        yield from _selectors(node.rhs)
    elif isinstance(node, promql_parser.AggregateExpr):
        yield from _selectors(node.expr)
        if node.param is not None:
            yield from _selectors(node.param)
    elif isinstance(node, promql_parser.Call):
        for arg in node.args:
            yield from _selectors(arg)
    elif isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)):
        yield from _selectors(node.expr)


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (or a Grafana label_values() query), via a real parser:
    a syntax error fails the test too."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    label_values = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", expr, re.S)
    if label_values:
        expr = label_values.group(1)
    try:
        ast = promql_parser.parse(expr)
    except ValueError as exc:
        raise AssertionError(f"invalid PromQL ({exc}): {expr}") from exc
    names = set()
    for selector in _selectors(ast):
        assert selector.name, f"select metrics by name, not by __name__ matchers: {expr}"
        names.add(selector.name)
    return names


def test_metric_names_parser() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, model) (rate(xrouter_x_bucket{a=~"5..", b="c"}[5m])))'
        " / ignoring(x) sum without (pod) (up offset 1h) > 1e3 and on() vector(1)"
    )
    assert metric_names(expr) == {"xrouter_x_bucket", "up"}
    assert metric_names('label_values(xrouter_y{namespace=~"$namespace"}, model)') == {"xrouter_y"}
    assert metric_names("time() - xrouter_z > 26 * 3600") == {"xrouter_z"}
    assert metric_names("max_over_time((-xrouter_a)[10m:1m]) or topk(3, xrouter_b)") == {
        "xrouter_a",
        "xrouter_b",
    }
    with pytest.raises(AssertionError, match="invalid PromQL"):
        metric_names("sum(rate(xrouter_x[5m])")


# --- the PrometheusRule --------------------------------------------------------------------------------


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    return [rule for group in doc["spec"]["groups"] for rule in group["rules"]]


def test_rules_have_the_alerts_users_expect() -> None:
    alerts = {r["alert"]: r for r in _rules() if "alert" in r}
    for required in [
        "XRouterHighErrorRate",
        "XRouterHighLatencyP95",
        "XRouterPodCrashLooping",
        "XRouterBackupFailed",
        "XRouterBackupLate",
        "XRouterUsageBufferGrowing",
    ]:
        assert required in alerts, f"missing alert {required}"
    assert "xrouter_operator_router_container_restarts" in alerts["XRouterPodCrashLooping"]["expr"]
    assert "xrouter_operator_backup_last_failed" in alerts["XRouterBackupFailed"]["expr"]
    assert "xrouter_operator_backup_last_success_timestamp_seconds" in alerts["XRouterBackupLate"]["expr"]
    assert "xrouter_usage_buffer_rows" in alerts["XRouterUsageBufferGrowing"]["expr"]
    assert "0.95" in alerts["XRouterHighLatencyP95"]["expr"]


def test_every_alert_is_complete() -> None:
    for rule in _rules():
        name = rule.get("alert") or rule.get("record")
        assert name and rule.get("expr"), rule
        if "alert" in rule:
            assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), f"{name}: needs a `for:`"
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
            assert rule["annotations"].get("summary"), f"{name}: needs a summary"
            assert rule["annotations"].get("description"), f"{name}: needs a description"


def test_rules_name_only_exported_metrics(exported_names: set[str]) -> None:
    for rule in _rules():
        unknown = metric_names(rule["expr"]) - exported_names
        assert not unknown, f"{rule.get('alert')}: metrics not exported by router or operator: {unknown}"


# --- the dashboard ---------------------------------------------------------------------------------------


def _dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            exprs.append((panel["title"], target["expr"]))
    for var in dash["templating"]["list"]:
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            exprs.append((f"variable {var['name']}", query))
    return exprs


def test_dashboard_is_well_formed() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dash["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], f"{panel['title']}: no queries"
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_covers_what_operators_look_at() -> None:
    text = "\n".join(expr for _, expr in _dashboard_exprs())
    for needle in [
        "rate(xrouter_requests_total",
        "sum by (provider)",
        'status=~"5.."',
        "histogram_quantile(0.5,",
        "histogram_quantile(0.95,",
        "histogram_quantile(0.99,",
        "xrouter_overhead_seconds_bucket",
        "xrouter_tokens_total",
        "xrouter_cost_usd_total",
        "xrouter_limit_rejections_total",
        "xrouter_breaker_state",
        "xrouter_usage_buffer_rows",
    ]:
        assert needle in text, f"dashboard lacks {needle}"


def test_dashboard_names_only_exported_metrics(exported_names: set[str]) -> None:
    for title, expr in _dashboard_exprs():
        unknown = metric_names(expr) - exported_names
        assert not unknown, f"panel {title!r}: metrics not exported by router or operator: {unknown}"


def test_documented_contract_is_exported(exported_names: set[str]) -> None:
    """The names the brief promises (and the docs show) are the ones the code exports."""
    for kinds in CONTRACT.values():
        for kind, names in kinds.items():
            for name in names:
                assert _sample_names(kind, name) <= exported_names, f"{name} ({kind}) is not exported"
