"""The CLI: render -f (offline), crd, rbac."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from xrouter_operator.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_render_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-f", str(ROOT / "config/samples/xrouter.yaml"), "-n", "demo"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    kinds = [d["kind"] for d in docs]
    # No Secret: an offline render has no admin key only the user knows (issue 10 item 18).
    expected = "ServiceAccount ConfigMap Service Deployment PodDisruptionBudget NetworkPolicy"
    assert kinds == expected.split()
    assert all(d["metadata"]["namespace"] == "demo" for d in docs)
    assert all("ownerReferences" not in d["metadata"] for d in docs)


def test_offline_render_never_contains_a_usable_admin_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-f", str(ROOT / "config/samples/xrouter.yaml")]) == 0
    captured = capsys.readouterr()
    assert "generated-by-the-operator" not in captured.out
    assert not [d for d in yaml.safe_load_all(captured.out) if d["kind"] == "Secret"]
    assert "create secret generic sample-admin-key" in captured.err
    # The key the user chooses is rendered when given, and only then.
    assert main(["render", "-f", str(ROOT / "config/samples/xrouter.yaml"), "--admin-key", "s3cret"]) == 0
    secrets = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d["kind"] == "Secret"]
    assert [s["metadata"]["name"] for s in secrets] == ["sample-admin-key"]


def test_render_bad_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: xrouter.io/v1alpha1\nkind: XRouter\nmetadata: {name: x}\n"
        "spec:\n  providers: [{name: a, type: openai}]\n"
        "  models: [{name: m, targets: [{provider: a, model: b}]}]\n"
    )
    assert main(["render", "-f", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "baseUrl" in err and "Traceback" not in err
    assert main(["render", "-f", str(tmp_path / "missing.yaml")]) == 1


def test_crd_and_rbac_print(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["kind"] == "CustomResourceDefinition"
    assert main(["rbac"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["kind"] == "ClusterRole"
