"""The S3 half of the backup: the upload script, its environment and volumes, and the
ConfigMap carrying the XRouter the Job uploads next to each dump."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import yaml

from .models import BackupS3, XRouter
from .naming import SECRETS_DIR, backup_export_name, meta
from .routerconfig import SecretFile

Manifest = dict[str, Any]

EXPORT_KEY = "xrouter.yaml"
EXPORT_DIR = "/export"
SCRATCH_DIR = "/scratch"

# POSIX sh (the pgclient image runs it with dash) around Debian's s3cmd.
# - Credentials come from the projected Secret files and go only into an s3cmd config in
#   $HOME, a memory-backed emptyDir readable by this UID alone (umask 077), removed on
#   exit: never an env var, an argument (visible in /proc: printf is a shell builtin) or a
#   log line.
# - The dump is staged in /scratch first, so a failed pg_dump uploads nothing. An S3 PUT
#   (or a multipart upload's completion) is atomic: a failed or killed upload leaves no
#   object under the dump's name, so the newest dump in the bucket is always whole.
# - The XRouter goes up first and is deleted again when the dump's upload fails, so every
#   dump in the bucket has its XRouter beside it and no XRouter is left without a dump.
# - The kubelet mounts the XRouter's ConfigMap key as a symlink (into the ..data directory it
#   swaps on updates), and s3cmd skips symlinks ("Nothing to upload", exit 64) unless told
#   to follow them.
# - The termination message (which the operator copies to status.lastBackup) is our own
#   text: the object written, or what failed. s3cmd's own errors go to the pod log only.
S3_BACKUP_SCRIPT = """\
set -eu
log="${TERMINATION_LOG:-/dev/termination-log}"
fail() { echo "$1" >&2; printf '%s' "$1" > "$log" || true; exit 1; }
command -v s3cmd >/dev/null || fail "spec.backup.image has no s3cmd (the s3 storage needs it)"
url="$(cat "$DATABASE_URL_FILE")"
id="$(cat "$S3_ACCESS_KEY_ID_FILE")"
key="$(cat "$S3_SECRET_ACCESS_KEY_FILE")"
umask 077
cfg="$HOME/s3cfg"
name="xrouter-$(date -u +%Y%m%dT%H%M%SZ)"
dump="$SCRATCH/$name.sql.gz"
trap 'rm -f -- "$cfg" "$dump" "$HOME/pg_dump.failed" "$HOME/ls" "$HOME/old"' EXIT
if [ "$S3_PATH_STYLE" = true ]; then hb="$S3_HOST"; else hb="%(bucket)s.$S3_HOST"; fi
{
  echo "[default]"
  printf 'access_key = %s\\nsecret_key = %s\\n' "$id" "$key"
  printf 'host_base = %s\\nhost_bucket = %s\\nuse_https = %s\\n' "$S3_HOST" "$hb" "$S3_HTTPS"
  printf 'bucket_location = %s\\nsignature_v2 = False\\nsocket_timeout = 30\\n' "$S3_REGION"
} > "$cfg"
unset id key
s3() { s3cmd --config="$cfg" --no-progress "$@"; }
dest="s3://$S3_BUCKET/$S3_PREFIX"
rm -f "$HOME/pg_dump.failed"
{ pg_dump --no-owner --no-privileges --dbname="$url" || touch "$HOME/pg_dump.failed"; } | gzip > "$dump"
[ ! -e "$HOME/pg_dump.failed" ] || fail "pg_dump failed"
s3 put --follow-symlinks "$XROUTER_EXPORT" "$dest$name.xrouter.yaml" >/dev/null \\
  || fail "upload to $dest failed (s3cmd exit $?): nothing was written"
if ! s3 put "$dump" "$dest$name.sql.gz" >/dev/null; then
  s3 del "$dest$name.xrouter.yaml" >/dev/null || true
  fail "upload of $name.sql.gz to $dest failed: nothing was written"
fi
echo "uploaded $dest$name.sql.gz and $name.xrouter.yaml"
s3 ls "$dest" > "$HOME/ls" || fail "uploaded $dest$name.sql.gz, but listing $dest for retention failed"
awk '{print $NF}' "$HOME/ls" | grep -E '/xrouter-[0-9]{8}T[0-9]{6}Z[.]sql[.]gz$' | sort -r \\
  | tail -n +$((RETENTION + 1)) > "$HOME/old" || true
while read -r old; do
  s3 del "$old" "${old%.sql.gz}.xrouter.yaml" >/dev/null \\
    || fail "uploaded $dest$name.sql.gz, but removing $old (retention) failed"
  echo "removed $old"
done < "$HOME/old"
printf '%s' "$dest$name.sql.gz" > "$log"
"""


def export_config_map(xr: XRouter) -> Manifest:
    """The XRouter as a user would re-apply it (what they set, no status, no server
    fields), for the Job to upload beside each dump. The spec carries no secrets: only
    references to them."""
    md: dict[str, Any] = {"name": xr.metadata.name, "namespace": xr.metadata.namespace}
    if xr.metadata.labels:
        md["labels"] = dict(xr.metadata.labels)
    doc = {
        "apiVersion": xr.api_version,
        "kind": xr.kind,
        "metadata": md,
        "spec": xr.spec.model_dump(mode="json", by_alias=True, exclude_unset=True),
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(xr, backup_export_name(xr.metadata.name), "backup"),
        "data": {EXPORT_KEY: yaml.safe_dump(doc, sort_keys=False)},
    }


def endpoint_host(s3: BackupS3) -> tuple[str, bool]:
    """(host[:port], https) of the endpoint; AWS S3 when unset."""
    if s3.endpoint is None:
        return "s3.amazonaws.com", True
    u = urlsplit(s3.endpoint)
    return u.netloc, u.scheme == "https"


def s3_files(s3: BackupS3) -> list[SecretFile]:
    return [
        SecretFile(s3.access_key_id_secret_ref.name, s3.access_key_id_secret_ref.key, "s3-access-key-id"),
        SecretFile(
            s3.secret_access_key_secret_ref.name, s3.secret_access_key_secret_ref.key, "s3-secret-access-key"
        ),
    ]


def s3_env(s3: BackupS3) -> list[dict[str, str]]:
    host, https = endpoint_host(s3)
    pairs = {
        "S3_BUCKET": s3.bucket,
        "S3_PREFIX": s3.key_prefix,
        "S3_HOST": host,
        "S3_HTTPS": "True" if https else "False",
        "S3_PATH_STYLE": "true" if s3.force_path_style else "false",
        "S3_REGION": s3.region,
        "S3_ACCESS_KEY_ID_FILE": f"{SECRETS_DIR}/s3-access-key-id",
        "S3_SECRET_ACCESS_KEY_FILE": f"{SECRETS_DIR}/s3-secret-access-key",
        "XROUTER_EXPORT": f"{EXPORT_DIR}/{EXPORT_KEY}",
        "SCRATCH": SCRATCH_DIR,
    }
    return [{"name": k, "value": v} for k, v in pairs.items()]


def s3_volumes(xr: XRouter, s3: BackupS3) -> tuple[list[Manifest], list[Manifest]]:
    """(volumes, mounts) besides the secrets: the export, the staging area, and $HOME in
    memory (the s3cmd config holding the credentials never touches a disk)."""
    volumes: list[Manifest] = [
        {
            "name": "export",
            "configMap": {
                "name": backup_export_name(xr.metadata.name),
                "items": [{"key": EXPORT_KEY, "path": EXPORT_KEY}],
            },
        },
        {"name": "scratch", "emptyDir": {"sizeLimit": str(s3.scratch_size)}},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
    ]
    mounts: list[Manifest] = [
        {"name": "export", "mountPath": EXPORT_DIR, "readOnly": True},
        {"name": "scratch", "mountPath": SCRATCH_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    return volumes, mounts
