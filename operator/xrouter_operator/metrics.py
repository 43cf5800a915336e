"""The operator's Prometheus metrics (names are a contract with the alerts in monitoring)."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "xrouter_operator_reconciles_total", "Reconciles of XRouter objects, by result.", ["result"]
)
RECONCILE_DURATION = Histogram(
    "xrouter_operator_reconcile_duration_seconds",
    "Time to reconcile one XRouter.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ERRORS = Counter("xrouter_operator_errors_total", "Reconciles that failed with an error.")
API_WRITES = Counter(
    "xrouter_operator_api_writes_total", "Write calls made to the Kubernetes API.", ["verb", "kind"]
)
READY = Gauge(
    "xrouter_operator_xrouter_ready",
    "1 if the XRouter is Ready, 0 if not; absent while it is scaled to zero.",
    ["namespace", "name"],
)
BACKUP_LAST_SUCCESS = Gauge(
    "xrouter_operator_backup_last_success_timestamp_seconds",
    "Completion time of the last successful backup Job.",
    ["namespace", "name"],
)
BACKUP_LAST_FAILED = Gauge(
    "xrouter_operator_backup_last_failed", "1 if the most recent backup Job failed.", ["namespace", "name"]
)
ROUTER_RESTARTS = Gauge(
    "xrouter_operator_router_container_restarts",
    "Sum of container restarts over the router pods.",
    ["namespace", "name"],
)

_PER_OBJECT = (READY, BACKUP_LAST_SUCCESS, BACKUP_LAST_FAILED, ROUTER_RESTARTS)


def forget(namespace: str, name: str) -> None:
    """Drop the per-object series of a deleted XRouter."""
    for gauge in _PER_OBJECT:
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)
