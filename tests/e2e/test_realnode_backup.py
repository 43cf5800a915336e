"""Backups on real pods: a Job made from the operator's backup CronJob runs a real pg_dump of the real
PostgreSQL pod into its PVC (a hostPath PV on the real node), status.lastBackup reports it, and a
restore drill (docs/operations.md) loads that dump into a fresh database with the same usage rows.
The same with spec.backup.storage.s3: the Job uploads the dump and the XRouter to a bucket on a real
S3 server (S3Proxy on the host, on the real node's bridge address), status.lastBackup names the
object, a restore drill fetches it from the bucket; an upload to a missing bucket fails the Job and
says so in status.lastBackup. A Job that ends otherwise fails its test with the Job's pods, their
container states, logs and the namespace's events.
Also: usage rows across a router pod replacement while PostgreSQL is down (rows spilled to the shared
Redis stream are replayed by whichever router pod reaches PostgreSQL first)."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from openai import OpenAI
from xrouter_dev import images
from xrouter_dev.cluster import LocalCluster
from xrouter_dev.nodeconfig import NODE_IP, STORAGE_CLASS, real_node_pod_placement
from xrouter_dev.s3proxy import ACCESS_KEY, SECRET_KEY, S3Proxy
from xrouter_dev.stack import DB_PASSWORD, TEAM_KEY, Cluster, Stack, deploy, get_json, remove, secret
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


def run_pod(
    stack: Stack, name: str, script: str, volumes: dict[str, dict[str, Any]], timeout: float = 120
) -> str:
    """A one-off pod from the postgres client image, with ``volumes`` (mount path: volume source)."""
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
                    "env": [{"name": "HOME", "value": "/tmp"}],
                    "volumeMounts": [{"name": f"v{i}", "mountPath": m} for i, m in enumerate(volumes)],
                }
            ],
            "volumes": [{"name": f"v{i}", **v} for i, v in enumerate(volumes.values())],
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


def job_from_cronjob(stack: Stack, job: str) -> float:
    """Create ``job`` from the backup CronJob exactly as `kubectl create job --from=cronjob/...`
    makes it, and return when it started (time.monotonic())."""
    body = json.loads(
        stack.cluster.kubectl(
            "create", "job", "-n", stack.namespace, job, f"--from=cronjob/{stack.name}-backup",
            "--dry-run=client", "-o", "json",
        ).stdout
    )  # fmt: skip
    # The operator's pod template already carries spec.pods' placement: it lands on the real node.
    placed = body["spec"]["template"]["spec"]
    assert {k: placed.get(k) for k in ("nodeSelector", "tolerations")} == real_node_pod_placement()
    t0 = time.monotonic()
    stack.cluster.kubectl("apply", "-n", stack.namespace, "-f", "-", input=json.dumps(body))
    return t0


def job_diagnostics(stack: Stack, job: str) -> str:
    """What explains a Job that did not end as expected: its conditions, each pod's phase and
    container state, each pod's log (through the API server) and the namespace's latest events."""
    ns, k = stack.namespace, stack.cluster.kubectl
    out = [f"job/{job} status: {json.dumps(get_json(stack.cluster, '-n', ns, f'job/{job}').get('status'))}"]
    for pod in get_json(stack.cluster, "-n", ns, "pods", "-l", f"job-name={job}")["items"]:
        pname, st = pod["metadata"]["name"], pod["status"]
        states = [cs.get("state") for cs in st.get("containerStatuses") or []]
        out.append(f"pod/{pname} on {pod['spec'].get('nodeName')} ({st.get('podIP')}): {st.get('phase')}, "
                   f"containers {json.dumps(states)}")  # fmt: skip
        out.append(k("logs", "-n", ns, pname, "--all-containers", "--tail=60", check=False).stdout)
    events = k("get", "events", "-n", ns, "--sort-by=.lastTimestamp", check=False).stdout
    out.append("events:\n" + "\n".join(events.splitlines()[-25:]))
    return "\n".join(out)


def wait_job(stack: Stack, job: str, condition: str, timeout: float) -> None:
    """Until the Job has ``condition`` (Complete or Failed); any other end, or none in time,
    fails with job_diagnostics()."""

    def ended() -> str | None:
        st = get_json(stack.cluster, "-n", stack.namespace, f"job/{job}").get("status", {})
        return next(
            (c["type"] for c in st.get("conditions") or [] if c["type"] in ("Complete", "Failed")
             and c["status"] == "True"),
            None,
        )  # fmt: skip

    try:
        got = eventually(f"job/{job} to end", ended, timeout, every=2)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{job_diagnostics(stack, job)}") from None
    assert got == condition, f"job/{job} ended {got}, not {condition}\n{job_diagnostics(stack, job)}"


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
    eventually(
        "the backup CronJob",
        lambda: bool(get_json(stack.cluster, "-n", stack.namespace, f"cronjob/{stack.name}-backup")),
    )
    rows = usage_rows(stack)
    t0 = job_from_cronjob(stack, "manual-backup")
    wait_job(stack, "manual-backup", "Complete", 180)
    FIGURES["backup job, s"] = round(time.monotonic() - t0, 1)
    logs = stack.cluster.kubectl("logs", "-n", stack.namespace, "job/manual-backup").stdout
    assert "wrote /backup/xrouter-" in logs, logs

    def reported() -> bool:
        last = stack.status().get("lastBackup") or {}
        return bool(last.get("time"))

    eventually("status.lastBackup", reported, 120, every=2)
    last = stack.status()["lastBackup"]
    FIGURES["status.lastBackup"] = last

    claim = {"/backup": {"persistentVolumeClaim": {"claimName": f"{stack.name}-backup"}}}
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


BUCKET = "xrouter-backups"
S3_PREFIX = "prod/eu"


@pytest.fixture(scope="module")
def s3(stack: Stack) -> Iterator[S3Proxy]:
    """S3Proxy on the host, listening only on the real node's bridge address (which the launcher
    owns and the pods reach as their gateway), with the backup bucket. After the stack: the bridge
    exists once the real node runs."""
    server = S3Proxy(host=NODE_IP)
    server.start()
    with pytest.raises(ConnectionRefusedError):  # bound to that address alone, not to loopback
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    server.s3cmd("mb", f"s3://{BUCKET}")
    stack.apply(secret("s3-backup", {"id": ACCESS_KEY, "secret": SECRET_KEY}))
    try:
        yield server
    finally:
        if server.log().strip():
            print(f"\ns3proxy log (tail):\n{server.log()[-3000:]}")
        server.stop()


def use_s3(stack: Stack, s3: S3Proxy, bucket: str) -> None:
    """spec.backup with the bucket as its storage, and wait until the CronJob uploads there."""
    stack.patch(
        {
            "spec": {
                "backup": {
                    "schedule": "0 3 * * *",
                    "image": images.PGCLIENT_IMAGE,
                    "storage": {
                        "size": None,
                        "storageClassName": None,
                        "s3": {
                            "bucket": bucket,
                            "prefix": S3_PREFIX,
                            "endpoint": s3.endpoint,
                            "forcePathStyle": True,
                            "accessKeyIdSecretRef": {"name": "s3-backup", "key": "id"},
                            "secretAccessKeySecretRef": {"name": "s3-backup", "key": "secret"},
                        },
                    },
                }
            }
        }
    )

    def rendered() -> bool:
        cron = get_json(stack.cluster, "-n", stack.namespace, f"cronjob/{stack.name}-backup")
        c = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        return {"name": "S3_BUCKET", "value": bucket} in c.get("env", [])

    eventually(f"the backup CronJob uploading to {bucket}", rendered, 60, every=1)
    eventually(
        "the XRouter export ConfigMap",
        lambda: get_json(stack.cluster, "-n", stack.namespace, f"configmap/{stack.name}-backup-export"),
    )


@pytest.mark.timeout(600)
def test_s3_backup_job_uploads_to_the_bucket_and_restore_drill_gets_the_same_rows(
    stack: Stack, s3: S3Proxy
) -> None:
    send(stack, 5, "s3backup")
    eventually("usage rows", lambda: len(usage_rows(stack)) >= 5, 60)
    use_s3(stack, s3, BUCKET)
    rows = usage_rows(stack)
    t0 = job_from_cronjob(stack, "s3-backup")
    wait_job(stack, "s3-backup", "Complete", 180)
    FIGURES["s3 backup job, s"] = round(time.monotonic() - t0, 1)
    logs = stack.cluster.kubectl("logs", "-n", stack.namespace, "job/s3-backup").stdout
    assert f"uploaded s3://{BUCKET}/{S3_PREFIX}/xrouter-" in logs, logs

    # The bucket, read with the S3 API from here: one dump and the XRouter beside it.
    keys = s3.keys(BUCKET)
    FIGURES["s3 objects"] = keys
    assert len(keys) == 2, keys
    dump = next(k for k in keys if k.endswith(".sql.gz"))
    assert dump.startswith(f"{S3_PREFIX}/xrouter-") and dump.replace(".sql.gz", ".xrouter.yaml") in keys
    assert len(s3.read(BUCKET, dump)) > 500
    xr = yaml.safe_load(s3.read(BUCKET, dump.replace(".sql.gz", ".xrouter.yaml")))
    assert xr["kind"] == "XRouter" and xr["metadata"]["name"] == stack.name and "status" not in xr
    assert xr["spec"]["backup"]["storage"]["s3"]["bucket"] == BUCKET

    def reported() -> dict[str, Any] | None:
        last = stack.status().get("lastBackup") or {}
        return last if last.get("object") else None

    last = eventually("status.lastBackup naming the object", reported, 120, every=2)
    FIGURES["s3 status.lastBackup"] = last
    assert last["object"] == f"s3://{BUCKET}/{dump}" and last["result"] == "Succeeded"

    # The restore drill of docs/operations.md ("Restore from the bucket"), in a pod on the real
    # node: the object status.lastBackup names, fetched with s3cmd, loaded into a fresh database.
    url = f"postgresql://postgres:{DB_PASSWORD}@postgres.{stack.namespace}.svc.cluster.local:5432"
    restore = (
        "set -euo pipefail; umask 077; "
        "printf '[default]\\naccess_key = %s\\nsecret_key = %s\\nhost_base = %s\\nhost_bucket = %s\\n"
        "use_https = False\\nsignature_v2 = False\\n' "
        f'"$(cat /s3/id)" "$(cat /s3/secret)" {s3.host}:{s3.port} {s3.host}:{s3.port} > /tmp/s3cfg; '
        f"s3cmd --config=/tmp/s3cfg --no-progress get {last['object']} /tmp/dump.sql.gz; "
        f'psql "{url}/postgres" -c "CREATE DATABASE restored_s3"; gunzip -c /tmp/dump.sql.gz | '
        f'psql -v ON_ERROR_STOP=1 --single-transaction -q "{url}/restored_s3"; echo restored {last["object"]}'
    )
    out = run_pod(stack, "s3-restore-drill", restore, {"/s3": {"secret": {"secretName": "s3-backup"}}}, 180)
    assert f"restored {last['object']}" in out, out
    restored = usage_rows(stack, "restored_s3")
    FIGURES["s3 restore drill"] = {"rows in dump's database": len(rows), "rows restored": len(restored)}
    assert restored == rows
    assert len(restored) >= 5


@pytest.mark.timeout(600)
def test_s3_upload_to_a_missing_bucket_fails_the_job_and_shows_in_status(stack: Stack, s3: S3Proxy) -> None:
    missing = "xrouter-no-such-bucket"
    use_s3(stack, s3, missing)
    before = s3.keys(BUCKET)
    t0 = job_from_cronjob(stack, "s3-backup-missing-bucket")
    # Its retries (backoffLimit 2, the Job controller's 10 s and 20 s back-off) and then Failed.
    wait_job(stack, "s3-backup-missing-bucket", "Failed", 240)
    FIGURES["s3 failing job until Failed, s"] = round(time.monotonic() - t0, 1)

    def reported() -> dict[str, Any] | None:
        last = stack.status().get("lastBackup") or {}
        return last if last.get("result") == "Failed" else None

    last = eventually("status.lastBackup saying the backup failed", reported, 120, every=2)
    FIGURES["s3 failed status.lastBackup"] = last
    # s3cmd's exit 12 is its "not found" (S3's NoSuchBucket); its own words are in the pod's log.
    want = f"upload to s3://{missing}/{S3_PREFIX}/ failed (s3cmd exit 12): nothing was written"
    assert last["message"] == want
    assert "object" not in last

    def warned() -> list[str]:
        on_xrouter = f"involvedObject.kind=XRouter,involvedObject.name={stack.name},reason=BackupFailed"
        events = get_json(stack.cluster, "-n", stack.namespace, "events", "--field-selector", on_xrouter)
        return [e["message"] for e in events["items"] if e["type"] == "Warning"]

    assert eventually("a BackupFailed event on the XRouter", warned, 30, every=1) == [want]
    assert s3.keys(BUCKET) == before  # nothing written anywhere else either
    assert SECRET_KEY not in json.dumps(stack.status())
    use_s3(stack, s3, BUCKET)


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
