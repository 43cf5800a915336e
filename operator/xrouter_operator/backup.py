"""Builders of the database backup: the PersistentVolumeClaim and the pg_dump CronJob
(to that volume, or to a bucket: ``backup_s3``)."""

from __future__ import annotations

from typing import Any

from .backup_s3 import S3_BACKUP_SCRIPT, s3_env, s3_files, s3_volumes
from .models import XRouter
from .naming import RUN_AS, SECRETS_DIR, backup_cronjob_name, backup_pvc_name, labels, meta
from .routerconfig import SecretFile, projected_volume
from .workload import node_placement, resources, restricted_container_security, restricted_pod_security

Manifest = dict[str, Any]

# The URL is read from the projected Secret file (never an env var); a separate
# assignment so that a missing file stops the script (set -e) instead of dumping nothing.
# POSIX sh (Debian's dash has no pipefail): a failed pg_dump leaves a marker the script checks.
# Partial files: a run that fails in the shell (gzip, a full volume) removes its own on exit;
# one killed outright (its deadline, the OOM killer) cannot, so each run first removes the
# partial files earlier runs left. The CronJob forbids concurrent runs, so none is in use.
BACKUP_SCRIPT = """\
set -eu
url="$(cat "$DATABASE_URL_FILE")"
for old in /backup/xrouter-*.sql.gz.partial; do
  if [ -e "$old" ]; then rm -f -- "$old"; echo "removed $old (left by an interrupted run)"; fi
done
f="/backup/xrouter-$(date -u +%Y%m%dT%H%M%SZ).sql.gz"
trap 'rm -f -- "$f.partial"' EXIT
rm -f /tmp/pg_dump.failed
{ pg_dump --no-owner --no-privileges --dbname="$url" || touch /tmp/pg_dump.failed; } | gzip > "$f.partial"
if [ -e /tmp/pg_dump.failed ]; then echo "pg_dump failed" >&2; exit 1; fi
mv "$f.partial" "$f"
echo "wrote $f"
ls -1t /backup/xrouter-*.sql.gz | tail -n +$((RETENTION + 1)) | while read -r old; do
  rm -f -- "$old"; echo "removed $old"
done
"""


def backup_pvc(xr: XRouter) -> Manifest:
    assert xr.spec.backup is not None
    s = xr.spec.backup.storage
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": s.size}}}
    if s.storage_class_name:
        spec["storageClassName"] = s.storage_class_name
    # Retain (the default): no ownerReference, so the dumps outlive the XRouter (the
    # database they restore usually does too). A re-created XRouter of the same name
    # adopts the claim by its labels.
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(xr, backup_pvc_name(xr), "backup", owned=s.when_deleted == "Delete"),
        "spec": spec,
    }


def backup_cronjob(xr: XRouter) -> Manifest:
    b = xr.spec.backup
    db = xr.spec.database
    assert b is not None and db is not None
    name = xr.metadata.name
    pod_labels = labels(name, "backup")
    ref = db.secret_ref()  # urlSecretRef, or CloudNativePG's NAME-app uri
    url = SecretFile(ref.name, ref.key, "database-url")
    env = [
        {"name": "DATABASE_URL_FILE", "value": f"{SECRETS_DIR}/{url.path}"},
        {"name": "RETENTION", "value": str(b.retention)},
        # No passwd entry for the UID: libpq looks for .pgpass here.
        {"name": "HOME", "value": "/tmp"},
    ]
    secret_mount = {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True}
    s3 = b.storage.s3
    if s3 is None:
        script = BACKUP_SCRIPT
        files = [url]
        mounts = [
            {"name": "backup", "mountPath": "/backup"},
            secret_mount,
            {"name": "tmp", "mountPath": "/tmp"},
        ]
        volumes = [
            {"name": "backup", "persistentVolumeClaim": {"claimName": backup_pvc_name(xr)}},
            projected_volume("secrets", files),
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        ]
    else:
        script = S3_BACKUP_SCRIPT
        files = [url, *s3_files(s3)]
        env += s3_env(s3)
        extra_volumes, extra_mounts = s3_volumes(xr, s3)
        mounts = [secret_mount, *extra_mounts]
        volumes = [projected_volume("secrets", files), *extra_volumes]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": meta(xr, backup_cronjob_name(name), "backup"),
        "spec": {
            "schedule": b.schedule,
            "suspend": b.suspend,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": 3600,
                    "template": {
                        "metadata": {"labels": pod_labels},
                        "spec": {
                            "restartPolicy": "Never",
                            "serviceAccountName": name,
                            "automountServiceAccountToken": False,
                            # As restricted as the router: high non-root UID (the dump is
                            # written through fsGroup), read-only root, no capabilities.
                            "securityContext": restricted_pod_security(),
                            **node_placement(xr.spec.pods),
                            "containers": [
                                {
                                    "name": "pg-dump",
                                    "image": b.image,
                                    "command": ["/bin/sh", "-c", script],
                                    "env": env,
                                    "resources": resources(b.resources),
                                    "securityContext": {
                                        **restricted_container_security(),
                                        "runAsUser": RUN_AS,
                                        "runAsGroup": RUN_AS,
                                    },
                                    "volumeMounts": mounts,
                                }
                            ],
                            "volumes": volumes,
                        },
                    },
                },
            },
        },
    }
