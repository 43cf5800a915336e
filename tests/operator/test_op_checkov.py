"""checkov (a security reviewer's scanner) on a full render: the checks issue 10 names pass.

checkov's dependencies conflict with the project's (it pins python-dateutil < 3), so it
lives in its own venv: ``python3 -m venv /tmp/checkov && /tmp/checkov/bin/pip install
checkov``, then ``XROUTER_CHECKOV=/tmp/checkov/bin/checkov``. Skipped when not found.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from xrouter_operator.cli import to_yaml
from xrouter_operator.render import RenderInputs, parse, render

CHECKOV = os.environ.get("XROUTER_CHECKOV") or shutil.which("checkov")
# Secrets as files (35), requests/limits (10, 12, 13), high UID (40), and the restricted basics.
MUST_PASS = ["CKV_K8S_35", "CKV_K8S_10", "CKV_K8S_12", "CKV_K8S_13", "CKV_K8S_40",
             "CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_23", "CKV_K8S_28", "CKV_K8S_37"]  # fmt: skip

SPEC = {
    "providers": [
        {"name": "openai", "type": "openai", "baseUrl": "https://api.openai.com/v1",
         "apiKeySecretRef": {"name": "llm-keys", "key": "openai"}},
    ],
    "models": [{"name": "gpt", "targets": [{"provider": "openai", "model": "gpt-4o"}]}],
    "keys": [{"name": "team-a", "secretKeyRef": {"name": "team-keys", "key": "a"}}],
    "redis": {"urlSecretRef": {"name": "redis", "key": "url"}},
    "database": {"urlSecretRef": {"name": "pg", "key": "url"}},
    "autoscaling": {"enabled": True},
    "backup": {"schedule": "0 3 * * *", "storage": {"size": "10Gi"}},
}  # fmt: skip


@pytest.mark.skipif(CHECKOV is None, reason="checkov not installed (see the module docstring)")
def test_checkov_passes_the_named_checks_on_deployment_and_cronjob(tmp_path: Path) -> None:
    assert CHECKOV is not None
    body = {"apiVersion": "xrouter.io/v1alpha1", "kind": "XRouter",
            "metadata": {"name": "prod", "namespace": "llm"}, "spec": SPEC}  # fmt: skip
    (tmp_path / "render.yaml").write_text(to_yaml(render(parse(body), RenderInputs(admin_key="k"))))
    r = subprocess.run(
        [CHECKOV, "-d", str(tmp_path), "--framework", "kubernetes", "--output", "json",
         "--check", ",".join(MUST_PASS)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    report = json.loads(r.stdout)
    results = report["results"]
    failed = [(c["check_id"], c["resource"]) for c in results.get("failed_checks", [])]
    assert failed == []
    passed = {(c["check_id"], c["resource"].split(".")[0]) for c in results["passed_checks"]}
    for kind in ("Deployment", "CronJob"):
        for check in ("CKV_K8S_35", "CKV_K8S_40"):
            assert (check, kind) in passed, (check, kind)
