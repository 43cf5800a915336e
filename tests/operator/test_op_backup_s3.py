"""The S3 backup end to end on loopback: the rendered script under dash, with the real
pg_dump against a real PostgreSQL, and Debian's s3cmd against a real S3 server (S3Proxy,
filesystem backend). Upload, the XRouter beside each dump, retention in the bucket, failures
(a bad credential, an unreachable endpoint, a refused upload, a failed dump) and a restore
from the bucket."""

from __future__ import annotations

import gzip
import itertools
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from xrouter_dev.s3proxy import ACCESS_KEY, SECRET_KEY, S3Proxy
from xrouter_dev.tools import free_port
from xrouter_operator.render import parse, render

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for the router's servers
from router.servers import Postgres

DASH = shutil.which("dash")
PREFIX = "prod/eu"
_BUCKETS = itertools.count()
pytestmark = pytest.mark.skipif(DASH is None, reason="dash is Debian's /bin/sh; the script runs under it")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Proxy]:
    server = S3Proxy()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    server = Postgres()
    server.start()
    server.sql("CREATE DATABASE app")
    server.sql("CREATE TABLE usage (id int PRIMARY KEY, tokens int)", db="app")
    server.sql("INSERT INTO usage SELECT i, i * 10 FROM generate_series(1, 500) i", db="app")
    yield server
    server.stop()
    server.cleanup()


@pytest.fixture
def bucket(s3: S3Proxy) -> str:
    """A new, empty bucket for each test (the server's directory goes with the module)."""
    name = f"xrouter-backups-{next(_BUCKETS)}"
    s3.s3cmd("mb", f"s3://{name}")
    return name


def xrouter(endpoint: str, bucket: str, retention: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "xrouter.io/v1alpha1",
        "kind": "XRouter",
        "metadata": {"name": "gw", "namespace": "ai", "uid": "u-1"},
        "spec": {
            "providers": [{"name": "p", "type": "openai-compatible", "baseUrl": "http://up.example/v1"}],
            "models": [{"name": "m", "targets": [{"provider": "p", "model": "m"}]}],
            "database": {"urlSecretRef": {"name": "pg", "key": "url"}},
            "backup": {
                "schedule": "@daily",
                "retention": retention,
                "storage": {
                    "s3": {
                        "bucket": bucket,
                        "prefix": PREFIX,
                        "endpoint": endpoint,
                        "forcePathStyle": True,
                        "accessKeyIdSecretRef": {"name": "s3", "key": "id"},
                        "secretAccessKeySecretRef": {"name": "s3", "key": "secret"},
                    }
                },
            },
        },
    }


def run_backup(
    tmp: Path, body: dict[str, Any], dsn: str, secret_key: str = SECRET_KEY
) -> tuple[subprocess.CompletedProcess[str], str]:
    """The rendered CronJob's script and env, its mounts moved into ``tmp``; returns the run
    and its termination message (what the operator copies to status.lastBackup)."""
    objs = {o["kind"] + "/" + o["metadata"]["name"]: o for o in render(parse(body))}
    pod = objs["CronJob/gw-backup"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["command"][:2] == ["/bin/sh", "-c"]
    env = {e["name"]: e["value"] for e in c["env"]}
    for d in ("secrets", "export", "scratch", "home"):
        (tmp / d).mkdir(exist_ok=True)
    (tmp / "secrets" / "database-url").write_text(dsn + "\n")
    (tmp / "secrets" / "s3-access-key-id").write_text(ACCESS_KEY)
    (tmp / "secrets" / "s3-secret-access-key").write_text(secret_key)
    # As the kubelet mounts a ConfigMap key: a symlink into the ..data directory it swaps atomically.
    data = tmp / "export" / "..2026_12_05_03_00_00.1"
    data.mkdir(exist_ok=True)
    (data / "xrouter.yaml").write_text(objs["ConfigMap/gw-backup-export"]["data"]["xrouter.yaml"])
    for link, target in (("..data", data.name), ("xrouter.yaml", "..data/xrouter.yaml")):
        if not (tmp / "export" / link).is_symlink():
            (tmp / "export" / link).symlink_to(target)
    moved = {k: v.replace("/var/run/xrouter/secrets", f"{tmp}/secrets") for k, v in env.items()}
    moved.update(
        XROUTER_EXPORT=f"{tmp}/export/xrouter.yaml",
        SCRATCH=f"{tmp}/scratch",
        HOME=f"{tmp}/home",
        TERMINATION_LOG=f"{tmp}/termination-log",
        PATH=f"{sorted(Path('/usr/lib/postgresql').glob('*/bin'))[-1]}:/usr/bin:/bin",
    )
    assert DASH is not None
    r = subprocess.run([DASH, "-c", c["command"][2]], env=moved, capture_output=True, text=True, timeout=120)
    log = tmp / "termination-log"
    msg = log.read_text() if log.exists() else ""
    # Nothing the Job leaves behind or says carries the secret key.
    assert secret_key not in r.stdout + r.stderr + msg
    assert not list((tmp / "scratch").iterdir()) and not list((tmp / "home").iterdir())
    return r, msg


def test_a_dump_and_its_xrouter_land_in_the_bucket_and_restore(
    tmp_path: Path, s3: S3Proxy, pg: Postgres, bucket: str
) -> None:
    r, msg = run_backup(tmp_path, xrouter(s3.endpoint, bucket), pg.dsn("app"))
    assert r.returncode == 0, r.stderr
    keys = s3.keys(bucket)
    assert len(keys) == 2, keys
    dump = next(k for k in keys if k.endswith(".sql.gz"))
    assert dump.startswith(f"{PREFIX}/xrouter-") and dump.removesuffix(".sql.gz") + ".xrouter.yaml" in keys
    assert msg == f"s3://{bucket}/{dump}"  # status.lastBackup.object

    # The XRouter beside the dump is one kubectl can apply again.
    s3.s3cmd("get", f"s3://{bucket}/{dump.removesuffix('.sql.gz')}.xrouter.yaml", str(tmp_path / "xr.yaml"))
    xr = yaml.safe_load((tmp_path / "xr.yaml").read_text())
    assert xr["kind"] == "XRouter" and xr["metadata"] == {"name": "gw", "namespace": "ai"}
    assert xr["spec"]["backup"]["storage"]["s3"]["bucket"] == bucket and "status" not in xr

    # The restore drill of docs/operations.md: fetch the newest dump, load it into an empty database.
    s3.s3cmd("get", f"s3://{bucket}/{dump}", str(tmp_path / "d.sql.gz"))
    pg.sql("DROP DATABASE IF EXISTS restored")
    pg.sql("CREATE DATABASE restored")
    psql = Path(sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]) / "psql"
    subprocess.run(
        [str(psql), "-q", "-v", "ON_ERROR_STOP=1", pg.dsn("restored")],
        input=gzip.decompress((tmp_path / "d.sql.gz").read_bytes()),
        check=True,
        capture_output=True,
    )
    assert pg.sql("SELECT count(*), sum(tokens) FROM usage", db="restored") == "500|1252500"


def test_retention_keeps_the_newest_dumps_under_the_prefix_and_nothing_else_is_touched(
    tmp_path: Path, s3: S3Proxy, pg: Postgres, bucket: str
) -> None:
    (tmp_path / "old").write_text("old")
    seeded = [f"{PREFIX}/xrouter-2026010{d}T030000Z" for d in (1, 2, 3)]
    others = [
        f"{PREFIX}/notes.txt",
        "staging/xrouter-20260101T030000Z.sql.gz",
        f"{PREFIX}/x/xrouter-20250101T030000Z.sql.gz",
    ]
    for key in [k + ext for k in seeded for ext in (".sql.gz", ".xrouter.yaml")] + others:
        s3.s3cmd("put", str(tmp_path / "old"), f"s3://{bucket}/{key}")

    r, msg = run_backup(tmp_path, xrouter(s3.endpoint, bucket, retention=2), pg.dsn("app"))
    assert r.returncode == 0, r.stderr
    new = msg.removeprefix(f"s3://{bucket}/").removesuffix(".sql.gz")
    # Kept: the new dump and the newest seeded one, each with its XRouter; the rest untouched.
    want = [k + ext for k in (seeded[2], new) for ext in (".sql.gz", ".xrouter.yaml")] + others
    assert s3.keys(bucket) == sorted(want)
    assert f"removed s3://{bucket}/{seeded[0]}.sql.gz" in r.stdout


def test_a_bad_credential_fails_the_job_and_writes_nothing(
    tmp_path: Path, s3: S3Proxy, pg: Postgres, bucket: str
) -> None:
    r, msg = run_backup(
        tmp_path, xrouter(s3.endpoint, bucket), pg.dsn("app"), secret_key="not-the-secret-key"
    )
    assert r.returncode != 0
    assert msg == f"upload to s3://{bucket}/{PREFIX}/ failed (s3cmd exit 77): nothing was written", r.stderr
    assert s3.keys(bucket) == []


@pytest.mark.slow  # s3cmd retries 5 times, 3 + 6 + 9 + 12 + 15 s, before it gives up: about 45 s
def test_an_unreachable_endpoint_fails_the_job(
    tmp_path: Path, pg: Postgres, s3: S3Proxy, bucket: str
) -> None:
    r, msg = run_backup(tmp_path, xrouter(f"http://127.0.0.1:{free_port()}", bucket), pg.dsn("app"))
    assert r.returncode != 0
    assert msg.startswith(f"upload to s3://{bucket}/{PREFIX}/ failed") and msg.endswith("nothing was written")
    assert s3.keys(bucket) == []


def test_a_refused_dump_upload_takes_its_xrouter_back(tmp_path: Path, pg: Postgres) -> None:
    # A server that refuses objects over 4 KiB: the XRouter (about 1 KiB) goes up, the dump not.
    small = S3Proxy(**{"s3proxy.max-single-part-object-size": "4096"})
    small.start()
    try:
        small.s3cmd("mb", "s3://small")
        pg.sql("CREATE DATABASE big")
        pg.sql("CREATE TABLE t AS SELECT md5(i::text) AS h FROM generate_series(1, 3000) i", db="big")
        r, msg = run_backup(tmp_path, xrouter(small.endpoint, "small"), pg.dsn("big"))
        assert r.returncode != 0
        assert msg.startswith("upload of xrouter-") and msg.endswith(
            "to s3://small/prod/eu/ failed: nothing was written"
        )
        assert small.keys("small") == []  # not even the XRouter: no dump to go with it
    finally:
        small.stop()


def test_a_failed_pg_dump_uploads_nothing(tmp_path: Path, s3: S3Proxy, pg: Postgres, bucket: str) -> None:
    r, msg = run_backup(tmp_path, xrouter(s3.endpoint, bucket), pg.dsn("no_such_database"))
    assert r.returncode != 0 and msg == "pg_dump failed"
    assert s3.keys(bucket) == []


def test_an_image_without_s3cmd_says_so(tmp_path: Path, s3: S3Proxy, pg: Postgres, bucket: str) -> None:
    # postgres:16-alpine, the default image, has pg_dump but no s3cmd.
    bare = tmp_path / "bin"
    bare.mkdir()
    objs = {o["kind"]: o for o in render(parse(xrouter(s3.endpoint, bucket)))}
    script = objs["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert DASH is not None
    env = {"PATH": str(bare), "TERMINATION_LOG": str(tmp_path / "t")}
    r = subprocess.run([DASH, "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert (tmp_path / "t").read_text() == "spec.backup.image has no s3cmd (the s3 storage needs it)"
