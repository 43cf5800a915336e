"""The backup CronJob's script and placement: run the rendered script under the image's /bin/sh."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_op_render import FULL_SPEC, MONITORING, _pod_specs, xr
from xrouter_operator.render import parse, render

# Debian's /bin/sh (and the postgres client images') is dash, which has no `set -o pipefail`.
DASH = shutil.which("dash")


def _container(spec: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = _pod_specs(render(parse(xr(**spec)), MONITORING))["CronJob"]["containers"][0]
    return c


def _run(tmp: Path, pg_dump: str, retention: int = 2) -> subprocess.CompletedProcess[str]:
    """The rendered script under dash with /backup and /tmp moved into ``tmp`` and a stand-in pg_dump."""
    c = _container(FULL_SPEC)
    assert c["command"][:2] == ["/bin/sh", "-c"]
    script = re.sub(r"(?<![\w/])/(backup|tmp)/", lambda m: f"{tmp}/{m[1]}/", c["command"][2])
    for d in ("backup", "tmp", "bin"):
        (tmp / d).mkdir(exist_ok=True)
    (tmp / "url").write_text("postgresql://u:p@db/x\n")
    fake = tmp / "bin" / "pg_dump"
    fake.write_text("#!/bin/sh\n" + pg_dump)
    fake.chmod(0o755)
    env = {
        "PATH": f"{tmp}/bin:/usr/bin:/bin",
        "DATABASE_URL_FILE": str(tmp / "url"),
        "RETENTION": str(retention),
    }
    assert DASH is not None
    return subprocess.run([DASH, "-c", script], env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(DASH is None, reason="dash is Debian's /bin/sh; the test needs it")
def test_the_script_runs_under_dash_and_writes_a_dump(tmp_path: Path) -> None:
    r = _run(tmp_path, 'echo "-- dump of $3"\necho "COPY usage FROM stdin;"\n')
    assert r.returncode == 0, r.stderr
    dumps = list((tmp_path / "backup").glob("xrouter-*.sql.gz"))
    assert len(dumps) == 1 and not list((tmp_path / "backup").glob("*.partial"))
    text = gzip.decompress(dumps[0].read_bytes()).decode()
    assert "COPY usage FROM stdin;" in text and "--dbname=postgresql://u:p@db/x" in text


@pytest.mark.skipif(DASH is None, reason="dash is Debian's /bin/sh; the test needs it")
def test_a_failed_pg_dump_fails_the_job_and_leaves_no_dump(tmp_path: Path) -> None:
    r = _run(tmp_path, 'echo "half a dump"\necho "connection refused" >&2\nexit 1\n')
    assert r.returncode != 0
    assert "pg_dump failed" in r.stderr
    assert list((tmp_path / "backup").iterdir()) == []


@pytest.mark.skipif(DASH is None, reason="dash is Debian's /bin/sh; the test needs it")
def test_retention_keeps_the_newest_dumps(tmp_path: Path) -> None:
    (tmp_path / "backup").mkdir()
    for i, stamp in enumerate(["20260101T000000Z", "20260102T000000Z", "20260103T000000Z"]):
        old = tmp_path / "backup" / f"xrouter-{stamp}.sql.gz"
        old.write_bytes(gzip.compress(b"old"))
        os.utime(old, (1_700_000_000 + i, 1_700_000_000 + i))
    assert _run(tmp_path, "echo new\n", retention=2).returncode == 0
    kept = sorted(p.name for p in (tmp_path / "backup").iterdir())
    assert len(kept) == 2 and "xrouter-20260103T000000Z.sql.gz" in kept


def test_backup_pods_go_where_the_router_pods_may() -> None:
    placement = {
        "nodeSelector": {"pool": "llm"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"}],
    }
    pods = _pod_specs(render(parse(xr(**FULL_SPEC, pods=placement)), MONITORING))
    for kind in ("Deployment", "CronJob"):
        assert pods[kind]["nodeSelector"] == {"pool": "llm"}, kind
        assert pods[kind]["tolerations"] == placement["tolerations"], kind


@pytest.mark.skipif(DASH is None, reason="dash is Debian's /bin/sh; the test needs it")
def test_partial_files_of_killed_runs_are_removed(tmp_path: Path) -> None:
    (tmp_path / "backup").mkdir()
    # Left by a run its deadline or the OOM killer ended (no chance to clean up).
    left = tmp_path / "backup" / "xrouter-20260101T030000Z.sql.gz.partial"
    left.write_bytes(b"x" * 1000)
    r = _run(tmp_path, "echo new\n")
    assert r.returncode == 0, r.stderr
    assert not left.exists() and "left by an interrupted run" in r.stdout
    assert len(list((tmp_path / "backup").glob("xrouter-*.sql.gz"))) == 1


@pytest.mark.skipif(DASH is None, reason="dash is Debian's /bin/sh; the test needs it")
def test_a_failing_gzip_leaves_no_partial_file(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    gz = tmp_path / "bin" / "gzip"
    gz.write_text("#!/bin/sh\ncat > /dev/null\necho 'gzip: No space left on device' >&2\nexit 1\n")
    gz.chmod(0o755)
    r = _run(tmp_path, "echo dump\n")
    assert r.returncode != 0
    assert list((tmp_path / "backup").iterdir()) == []


def test_backup_claim_has_no_owner_unless_asked() -> None:
    def pvc(storage: dict[str, Any]) -> dict[str, Any]:
        spec = {**FULL_SPEC, "backup": {**FULL_SPEC["backup"], "storage": storage}}
        return next(m for m in render(parse(xr(**spec)), MONITORING) if m["kind"] == "PersistentVolumeClaim")

    assert "ownerReferences" not in pvc({"size": "1Gi"})["metadata"]
    assert "ownerReferences" not in pvc({"size": "1Gi", "whenDeleted": "Retain"})["metadata"]
    assert pvc({"size": "1Gi", "whenDeleted": "Delete"})["metadata"]["ownerReferences"][0]["controller"]
    with pytest.raises(ValueError, match="whenDeleted only applies to a new PVC"):
        parse(
            xr(
                **{
                    **FULL_SPEC,
                    "backup": {
                        **FULL_SPEC["backup"],
                        "storage": {"existingClaim": "c", "whenDeleted": "Delete"},
                    },
                }
            )
        )
