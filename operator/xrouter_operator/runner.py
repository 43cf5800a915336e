"""``xrouter-operator run``: kopf, embedded, in standalone mode.

Run one replica with the ``Recreate`` strategy: standalone mode means no peering, so
two replicas would both reconcile. (They would not fight - both apply the same
render - but they would double the API writes.)
"""

from __future__ import annotations

import logging

import kopf
from prometheus_client import start_http_server

from . import handlers


def run_operator(
    *,
    namespaces: list[str],
    metrics_port: int,
    health_port: int,
    resync_seconds: float,
    json_logs: bool,
    verbose: bool,
) -> int:
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if json_logs else kopf.LogFormat.PLAIN,
    )
    logging.getLogger("xrouter_operator").setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:  # kopf logs every handled watch event at INFO; ours say what changed
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if metrics_port:
        start_http_server(metrics_port)
    handlers.RESYNC_SECONDS = resync_seconds
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz",
    )
    return 0
