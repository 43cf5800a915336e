"""spec.backup.storage.s3 against the real API server: the CRD's CEL rules refuse the
contradictory storages naming the field, and the XRouter plus everything the operator renders
for it (the CronJob with its projected credentials, the export ConfigMap) pass a server-side
dry run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_operator_e2e import crd as crd  # the XRouter CRD, a session fixture

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "tests" / "operator" / "golden" / "backup-s3.input.yaml"
OPERATOR = Path(sys.executable).parent / "xrouter-operator"


@pytest.fixture
def ns(namespace: str, crd: None) -> str:
    """A namespace, with the XRouter CRD installed and Established (test_operator_e2e's fixture)."""
    return namespace


def _xr() -> dict[str, Any]:
    xr: dict[str, Any] = next(d for d in yaml.safe_load_all(CASE.read_text()) if d and d["kind"] == "XRouter")
    for field in ("namespace", "uid"):
        xr["metadata"].pop(field)
    return xr


def _with_storage(**storage: Any) -> dict[str, Any]:
    xr = _xr()
    s = xr["spec"]["backup"]["storage"]
    for k, v in storage.items():
        if v is None:
            s.pop(k, None)
        else:
            s[k] = v
    return xr


def _with_store(name: str) -> dict[str, Any]:
    xr = _xr()
    xr["spec"]["secretProviderClass"] = {"name": name}
    return xr


def _dry_run(cluster: Any, ns: str, text: str) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = cluster.kubectl(
        "-n", ns, "apply", "--dry-run=server", "-f", "-", input=text, check=False
    )
    return result


S3 = next(d for d in yaml.safe_load_all(CASE.read_text()) if d and d["kind"] == "XRouter")["spec"]["backup"][
    "storage"
]["s3"]


@pytest.mark.parametrize(
    ("label", "xr", "needle"),
    [
        (
            "s3 and a new PVC",
            _with_storage(size="1Gi"),
            "set exactly one of size (a new PVC), existingClaim or s3",
        ),
        ("s3 and a claim", _with_storage(existingClaim="c"), "set exactly one of size"),
        ("s3 with whenDeleted", _with_storage(whenDeleted="Delete"), "whenDeleted only applies to a new PVC"),
        ("a bad bucket", _with_storage(s3={**S3, "bucket": "Bad_Bucket"}), "spec.backup.storage.s3.bucket"),
        ("an endpoint with a path", _with_storage(s3={**S3, "endpoint": "https://m/p"}), "s3.endpoint"),
        (
            "credentials from the SecretProviderClass",
            _with_store("s3-creds"),
            "reads the bucket's credentials from a Secret",
        ),
    ],
)
def test_contradictory_s3_storage_refused_naming_the_field(
    cluster: Any, ns: str, label: str, xr: dict[str, Any], needle: str
) -> None:
    r = _dry_run(cluster, ns, yaml.safe_dump(xr))
    assert r.returncode != 0, f"{label}: accepted"
    assert needle in r.stderr, f"{label}: {needle!r} not in {r.stderr!r}"


def test_s3_backup_accepted_and_rendered_objects_pass_dry_run(cluster: Any, ns: str) -> None:
    rendered = subprocess.run(
        [str(OPERATOR), "render", "-f", str(CASE), "--namespace", ns],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    r = _dry_run(cluster, ns, yaml.safe_dump(_xr()) + "---\n" + rendered)
    assert r.returncode == 0, r.stderr
    for created in (
        "xrouter.xrouter.io/bucket",
        "cronjob.batch/bucket-backup",
        "configmap/bucket-backup-export",
    ):
        assert f"{created} created (server dry run)" in r.stdout, r.stdout
