"""S3Proxy (a real S3 server, filesystem backend) on a free port, for the S3 backup tests, with
s3cmd (Debian's, as in the pgclient image) as the client that checks the bucket. On loopback for
the script run locally (tests/operator/test_op_backup_s3.py); on the real node's bridge address for
the backup Job on a real pod (tests/e2e/test_realnode_backup.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from xrouter_dev.procs import stop
from xrouter_dev.tools import free_port

ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "hack" / "s3proxy" / "pom.xml"
ACCESS_KEY = "AKIAXROUTERTEST"
SECRET_KEY = "s3-secret-of-the-test-41f0"


def s3proxy_lib() -> Path:
    m = re.search(r"<s3proxy.version>(.+)</s3proxy.version>", POM.read_text())
    assert m
    base = os.environ.get("XROUTER_S3PROXY_DIR") or str(Path.home() / ".cache/xrouter" / f"s3proxy-{m[1]}")
    lib = Path(base) / "lib"
    if not (Path(base) / ".installed").exists():
        raise RuntimeError(f"S3Proxy {m[1]} is not installed in {base}: run `make s3proxy`")
    return lib


class S3Proxy:
    def __init__(self, host: str = "127.0.0.1", **properties: str) -> None:
        """``host``: the address to listen on (loopback; the real node's bridge for its pods).
        ``properties``: more s3proxy.* settings (e.g. a size limit to make uploads fail)."""
        self.host = host
        self.properties = properties
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="xrouter-s3-"))
        (self.dir / "data").mkdir()
        self.log_path = self.dir / "s3proxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        props = self.dir / "s3proxy.conf"
        props.write_text(
            f"s3proxy.endpoint={self.endpoint}\n"
            "s3proxy.authorization=aws-v2-or-v4\n"
            f"s3proxy.identity={ACCESS_KEY}\n"
            f"s3proxy.credential={SECRET_KEY}\n"
            "jclouds.provider=filesystem\n"
            f"jclouds.filesystem.basedir={self.dir / 'data'}\n"
            + "".join(f"{k}={v}\n" for k, v in self.properties.items())
        )
        cmd = [
            "java",
            f"-Dlogback.configurationFile={ROOT / 'hack' / 's3proxy' / 'logback.xml'}",
            "-cp",
            f"{s3proxy_lib()}/*",
            "org.gaul.s3proxy.Main",
            "--properties",
            str(props),
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        # Listening is not serving: wait for an answer to a signed request.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"s3proxy exited with {self.proc.returncode}:\n{self.log()}")
            if self.s3cmd("ls", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise TimeoutError(f"s3proxy did not answer on {self.endpoint}:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def config(self, secret_key: str = SECRET_KEY) -> Path:
        cfg = self.dir / f"s3cfg-{abs(hash(secret_key))}"
        host = f"{self.host}:{self.port}"
        cfg.write_text(
            f"[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {secret_key}\nhost_base = {host}\n"
            f"host_bucket = {host}\nuse_https = False\nbucket_location = us-east-1\nsignature_v2 = False\n"
        )
        return cfg

    def s3cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["s3cmd", f"--config={self.config()}", "--no-progress", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def keys(self, bucket: str) -> list[str]:
        """Every object key in the bucket, sorted. The filesystem backend lists the directories
        it made for a prefix as empty "dir/" keys; those are not objects anyone wrote."""
        out = self.s3cmd("ls", "--recursive", f"s3://{bucket}/").stdout
        keys = (line.split(None, 3)[3].removeprefix(f"s3://{bucket}/") for line in out.splitlines())
        return sorted(k for k in keys if not k.endswith("/"))

    def read(self, bucket: str, key: str) -> bytes:
        """An object's content."""
        dest = self.dir / "read"
        self.s3cmd("get", "--force", f"s3://{bucket}/{key}", str(dest))
        data = dest.read_bytes()
        dest.unlink()
        return data

    def stop(self) -> None:
        stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)
