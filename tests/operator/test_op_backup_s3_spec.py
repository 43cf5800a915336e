"""spec.backup.storage.s3 without any server: what the model refuses (naming the field),
what render gives the Job (credentials only as files), and status.lastBackup from the Job's
termination message, through a whole reconcile."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from test_op_reconcile import make
from test_op_render import MONITORING, xr
from xrouter_operator.render import RenderError, parse, render

REFS = {
    "accessKeyIdSecretRef": {"name": "s3", "key": "id"},
    "secretAccessKeySecretRef": {"name": "s3", "key": "secret"},
}
S3: dict[str, Any] = {"bucket": "backups", "endpoint": "http://minio.storage.svc:9000", **REFS}
DB = {"urlSecretRef": {"name": "pg", "key": "url"}}


def spec(storage: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    backup = {"schedule": "@daily", "storage": storage if storage is not None else {"s3": S3}}
    return {"database": DB, "backup": backup, **extra}


@pytest.mark.parametrize(
    ("storage", "extra", "needle"),
    [
        (
            {"s3": S3, "size": "1Gi"},
            {},
            "spec.backup.storage: set exactly one of size (a new PVC), existingClaim or s3",
        ),
        ({}, {}, "set exactly one of size"),
        (
            {"s3": S3, "whenDeleted": "Delete"},
            {},
            "spec.backup.storage.whenDeleted only applies to a new PVC",
        ),
        ({"s3": S3, "storageClassName": "ssd"}, {}, "storageClassName only applies to a new PVC"),
        ({"s3": {**S3, "bucket": "Bad_Bucket"}}, {}, "spec.backup.storage.s3.bucket"),
        ({"s3": {**S3, "prefix": "/abs"}}, {}, "spec.backup.storage.s3.prefix"),
        ({"s3": {**S3, "prefix": "a b"}}, {}, "spec.backup.storage.s3.prefix"),
        ({"s3": {**S3, "endpoint": "minio:9000"}}, {}, "spec.backup.storage.s3.endpoint"),
        ({"s3": {**S3, "endpoint": "https://minio/base/path"}}, {}, "spec.backup.storage.s3.endpoint"),
        ({"s3": {"bucket": "backups"}}, {}, "spec.backup.storage.s3.accessKeyIdSecretRef"),
        (
            {"s3": {**S3, "secretAccessKeySecretRef": {"name": "vault", "key": "k"}}},
            {"secretProviderClass": {"name": "vault"}},
            "spec.backup.storage.s3: the backup Job reads the bucket's credentials from a Secret",
        ),
    ],
)
def test_bad_s3_storage_is_refused_naming_the_field(
    storage: dict[str, Any], extra: dict[str, Any], needle: str
) -> None:
    with pytest.raises(RenderError) as e:
        parse(xr(**spec(storage, **extra)))
    assert needle in str(e.value)


def _objects(**s3: Any) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in render(parse(xr(**spec({"s3": {**S3, **s3}}))), MONITORING)}


def test_the_job_gets_credentials_only_as_files_and_no_volume_claim() -> None:
    objs = _objects(prefix="prod/eu/")
    assert "PersistentVolumeClaim" not in objs
    pod = objs["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert all("valueFrom" not in e for e in env.values())  # no Secret reaches an env var
    assert env["S3_ACCESS_KEY_ID_FILE"]["value"].startswith("/var/run/xrouter/secrets/")
    assert (env["S3_HOST"]["value"], env["S3_HTTPS"]["value"]) == ("minio.storage.svc:9000", "False")
    assert env["S3_PREFIX"]["value"] == "prod/eu/"
    sources = next(v for v in pod["volumes"] if v["name"] == "secrets")["projected"]["sources"]
    assert {"key": "secret", "path": "s3-secret-access-key"} in sources[1]["secret"]["items"]
    # $HOME, where the script writes the s3cmd config with the credentials, is in memory.
    assert next(v for v in pod["volumes"] if v["name"] == "tmp")["emptyDir"]["medium"] == "Memory"


@pytest.mark.parametrize(
    ("prefix", "want"), [("", ""), ("prod", "prod/"), ("prod/eu/", "prod/eu/"), ("a/b", "a/b/")]
)
def test_prefix_becomes_a_key_prefix(prefix: str, want: str) -> None:
    c = _objects(prefix=prefix)["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"]: e["value"] for e in c["env"]}["S3_PREFIX"] == want


def test_aws_is_the_default_endpoint() -> None:
    objs = {o["kind"]: o for o in render(parse(xr(**spec({"s3": {"bucket": "bkt", **REFS}}))), MONITORING)}
    c = objs["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert (env["S3_HOST"], env["S3_HTTPS"], env["S3_PATH_STYLE"]) == ("s3.amazonaws.com", "True", "false")


def test_the_export_is_the_xrouter_as_written() -> None:
    cm = _objects()["ConfigMap"]
    assert cm["metadata"]["name"] != "x-config"  # the router's own config is another ConfigMap
    exports = [
        o for o in render(parse(xr(**spec())), MONITORING) if o["metadata"]["name"] == "x-backup-export"
    ]
    doc = yaml.safe_load(exports[0]["data"]["xrouter.yaml"])
    assert doc["metadata"] == {"name": "x", "namespace": "ns"}
    assert doc["spec"] == spec() | {
        "providers": [{"name": "mock", "type": "mock"}],
        "models": [{"name": "m", "targets": [{"provider": "mock", "model": "echo"}]}],
    }


def _job(kube: Any, name: str, cron_uid: str, failed: bool) -> str:
    uid = f"job-{name}"
    cond = (
        {"type": "Failed", "status": "True", "lastTransitionTime": "2026-01-02T03:00:10Z"}
        if failed
        else {"type": "Complete", "status": "True"}
    )
    labels = {"xrouter.io/instance": "r", "app.kubernetes.io/component": "backup"}
    kube.put(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": "ns",
                "uid": uid,
                "labels": labels,
                "ownerReferences": [{"uid": cron_uid, "controller": True}],
            },
            "status": {
                "conditions": [cond],
                **({} if failed else {"completionTime": "2026-01-01T03:00:10Z"}),
            },
        }
    )
    return uid


def _pod(kube: Any, name: str, job_uid: str, message: str, finished: str) -> None:
    kube.put(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "ns",
                "labels": {"xrouter.io/instance": "r", "app.kubernetes.io/component": "backup"},
                "ownerReferences": [{"uid": job_uid, "controller": True}],
            },
            "status": {
                "containerStatuses": [
                    {"name": "pg-dump", "state": {"terminated": {"message": message, "finishedAt": finished}}}
                ]
            },
        }
    )


def test_status_names_the_object_and_then_the_failure() -> None:
    kube, rec = make(**spec())
    rec.reconcile("ns", "r")
    cron_uid = kube.objects[("CronJob", "ns", "r-backup")]["metadata"]["uid"]
    obj = "s3://backups/xrouter-20260101T030000Z.sql.gz"
    _pod(kube, "r-backup-1-a", _job(kube, "r-backup-1", cron_uid, failed=False), obj, "2026-01-01T03:00:10Z")
    rec.reconcile("ns", "r")
    status = kube.objects[("XRouter", "ns", "r")]["status"]
    assert status["lastBackup"] == {"time": "2026-01-01T03:00:10Z", "result": "Succeeded", "object": obj}

    # A failed run (three pods: backoffLimit 2): the newest pod's message is the reason.
    uid = _job(kube, "r-backup-2", cron_uid, failed=True)
    _pod(kube, "r-backup-2-a", uid, "pg_dump failed", "2026-01-02T03:00:01Z")
    why = "upload to s3://backups/ failed (s3cmd exit 77): nothing was written"
    _pod(kube, "r-backup-2-b", uid, why, "2026-01-02T03:00:09Z")
    rec.reconcile("ns", "r")
    status = kube.objects[("XRouter", "ns", "r")]["status"]
    assert status["lastBackup"] == {"time": "2026-01-02T03:00:10Z", "result": "Failed", "message": why}


def test_a_missing_credentials_secret_is_degraded_naming_the_field() -> None:
    kube, rec = make(**spec())
    kube.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "pg", "namespace": "ns"},
            "data": {"url": "eA=="},
        }
    )
    rec.reconcile("ns", "r")
    st = kube.objects[("XRouter", "ns", "r")]["status"]
    degraded = next(c for c in st["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "SecretMissing"
    assert "spec.backup.storage.s3.accessKeyIdSecretRef" in degraded["message"]
