"""Backups on real pods: a Job made from the operator's backup CronJob runs a real pg_dump of the real
PostgreSQL pod into its PVC (a hostPath PV on the real node), status.lastBackup reports it, and a
restore drill (docs/operations.md) loads that dump into a fresh database with the same usage rows.
Also: usage rows across a router pod replacement while PostgreSQL is down (rows spilled to the shared
Redis stream are replayed by whichever router pod reaches PostgreSQL first)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI
from xrouter_dev import images
from xrouter_dev.cluster import LocalCluster
from xrouter_dev.nodeconfig import STORAGE_CLASS, real_node_pod_placement
from xrouter_dev.stack import DB_PASSWORD, TEAM_KEY, Cluster, Stack, deploy, get_json, remove
from xrouter_dev.waiting import eventually

FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[Stack]:
    if not isinstance(cluster, LocalCluster):
        pytest.skip("deploys onto the local launcher's real node")
    node = cluster.start_real_node()
    node.load_images()
    suffix = uuid.uuid4().hex[:6]
    ns, op_ns = f"backup-{suffix}", f"backup-op-{suffix}"
    cluster.kubectl("create", "namespace", ns)
    try:
        yield deploy(cluster, ns, op_ns)
    finally:
        print("\nbackup figures: " + json.dumps(FIGURES, indent=1))
        remove(cluster, op_ns, ns)


def send(stack: Stack, n: int, tag: str) -> None:
    ip = stack.service_ip()
    client = OpenAI(base_url=f"http://{ip}/v1", api_key=TEAM_KEY, max_retries=0, timeout=10)
    for i in range(n):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"{tag}{i}"}]
        )


def usage_rows(stack: Stack, database: str = "xrouter") -> list[str]:
    out = stack.psql(
        "SELECT request_id || ',' || key_name || ',' || prompt_tokens || ',' || completion_tokens "
        "FROM xrouter_usage ORDER BY request_id",
        database,
    )
    return [ln for ln in out.splitlines() if ln]


def run_pod(stack: Stack, name: str, script: str, claim: str, timeout: float = 120) -> str:
    """A one-off pod from the postgres client image, with the backup claim at /backup."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            **real_node_pod_placement(),
            "restartPolicy": "Never",
            "securityContext": {"runAsUser": 70, "runAsGroup": 70, "fsGroup": 70},
            "containers": [
                {
                    "name": "sh",
                    "image": images.PGCLIENT_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["/bin/bash", "-c", script],
                    "volumeMounts": [{"name": "b", "mountPath": "/backup"}],
                }
            ],
            "volumes": [{"name": "b", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }
    stack.cluster.kubectl("apply", "-n", stack.namespace, "-f", "-", input=json.dumps(pod))

    def done() -> bool:
        phase = get_json(stack.cluster, "-n", stack.namespace, f"pod/{name}")["status"].get("phase")
        return phase in ("Succeeded", "Failed")

    eventually(f"pod {name}", done, timeout)
    logs = stack.cluster.kubectl("logs", "-n", stack.namespace, name).stdout
    phase = get_json(stack.cluster, "-n", stack.namespace, f"pod/{name}")["status"]["phase"]
    assert phase == "Succeeded", logs
    return logs


@pytest.mark.timeout(600)
def test_backup_job_dumps_real_postgres_and_restore_drill_gets_the_same_rows(stack: Stack) -> None:
    send(stack, 5, "backup")
    eventually("usage rows", lambda: len(usage_rows(stack)) >= 5, 60)
    stack.patch(
        {
            "spec": {
                "backup": {
                    "schedule": "0 3 * * *",
                    "image": images.PGCLIENT_IMAGE,
                    "storage": {"size": "1Gi", "storageClassName": STORAGE_CLASS},
                }
            }
        }
    )
    cronjob = f"{stack.name}-backup"
    eventually(
        "the backup CronJob",
        lambda: bool(get_json(stack.cluster, "-n", stack.namespace, f"cronjob/{cronjob}")),
    )
    rows = usage_rows(stack)
    # A Job from the CronJob, exactly as `kubectl create job --from=cronjob/...` makes it: the
    # operator's pod template already carries spec.pods' placement, so it lands on the real node.
    job = json.loads(
        stack.cluster.kubectl(
            "create", "job", "-n", stack.namespace, "manual-backup", f"--from=cronjob/{cronjob}",
            "--dry-run=client", "-o", "json",
        ).stdout
    )  # fmt: skip
    placed = job["spec"]["template"]["spec"]
    assert {k: placed.get(k) for k in ("nodeSelector", "tolerations")} == real_node_pod_placement()
    t0 = time.monotonic()
    stack.cluster.kubectl("apply", "-n", stack.namespace, "-f", "-", input=json.dumps(job))
    stack.cluster.kubectl(
        "wait",
        "-n",
        stack.namespace,
        "--for=condition=complete",
        "job/manual-backup",
        "--timeout=180s",
        timeout=200,
    )
    FIGURES["backup job, s"] = round(time.monotonic() - t0, 1)
    logs = stack.cluster.kubectl("logs", "-n", stack.namespace, "job/manual-backup").stdout
    assert "wrote /backup/xrouter-" in logs, logs

    def reported() -> bool:
        last = stack.status().get("lastBackup") or {}
        return bool(last.get("time"))

    eventually("status.lastBackup", reported, 120, every=2)
    last = stack.status()["lastBackup"]
    FIGURES["status.lastBackup"] = last

    claim = f"{stack.name}-backup"
    listing = run_pod(
        stack, "list-backups", "ls -l /backup; zcat /backup/xrouter-*.sql.gz | head -c 0", claim
    )
    dump = next(ln for ln in listing.splitlines() if ln.endswith(".sql.gz"))
    FIGURES["dump"] = " ".join(dump.split()[4:])
    size = int(dump.split()[4])
    assert size > 500, listing

    # The restore drill of docs/operations.md: a fresh database, the dump loaded, the same rows.
    url = f"postgresql://postgres:{DB_PASSWORD}@postgres.{stack.namespace}.svc.cluster.local:5432"
    restore = (
        f'set -euo pipefail; psql "{url}/postgres" -c "CREATE DATABASE restored"; '
        f'f=$(ls -1t /backup/xrouter-*.sql.gz | head -1); gunzip -c "$f" | '
        f'psql -v ON_ERROR_STOP=1 --single-transaction -q "{url}/restored"; echo restored "$f"'
    )
    out = run_pod(stack, "restore-drill", restore, claim, timeout=180)
    assert "restored /backup/xrouter-" in out, out
    restored = usage_rows(stack, "restored")
    FIGURES["restore drill"] = {"rows in dump's database": len(rows), "rows restored": len(restored)}
    assert restored == rows
    assert len(restored) >= 5


@pytest.mark.timeout(600)
def test_usage_survives_pod_replacement_while_postgres_is_down(stack: Stack) -> None:
    before = len(usage_rows(stack))
    stack.cluster.kubectl("scale", "-n", stack.namespace, "deployment/postgres", "--replicas=0")
    eventually(
        "PostgreSQL gone",
        lambda: not get_json(stack.cluster, "-n", stack.namespace, "pods", "-l", "app=postgres")["items"],
        90,
    )
    served = 0
    ip = stack.service_ip()
    client = OpenAI(base_url=f"http://{ip}/v1", api_key=TEAM_KEY, max_retries=0, timeout=10)
    for i in range(10):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"down{i}"}]
        )
        served += 1
    victim = stack.router_pods()[0]["metadata"]["name"]
    stack.cluster.kubectl("delete", "pod", "-n", stack.namespace, victim, "--wait=true", timeout=120)
    stack.cluster.kubectl("scale", "-n", stack.namespace, "deployment/postgres", "--replicas=1")
    stack.cluster.kubectl(
        "rollout", "status", "-n", stack.namespace, "deployment/postgres", "--timeout=120s", timeout=150
    )
    eventually(
        "every served request's usage row",
        lambda: len(usage_rows(stack)) >= before + served,
        180,
        every=3,
    )
