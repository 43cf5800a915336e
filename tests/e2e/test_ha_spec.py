"""spec.redis (Sentinel, Cluster), spec.database.cnpg and spec.secretProviderClass against
the real API server: the CRD's CEL rules accept the production topology and refuse the
contradictory ones naming the field, and what the operator renders for it passes a
server-side dry run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_operator_e2e import crd as crd  # the XRouter CRD, a session fixture

ROOT = Path(__file__).resolve().parents[2]
HA = ROOT / "tests" / "operator" / "golden" / "ha.input.yaml"
VAULT = ROOT / "tests" / "operator" / "golden" / "vault.input.yaml"
OPERATOR = Path(sys.executable).parent / "xrouter-operator"
SENTINEL: dict[str, Any] = {"masterName": "mymaster", "addresses": ["redis-sentinel:26379"]}
REF = {"name": "redis", "key": "url"}


@pytest.fixture
def ns(namespace: str, crd: None) -> str:
    """A namespace, with the XRouter CRD installed and Established (test_operator_e2e's fixture)."""
    return namespace


def _xr(**spec: Any) -> dict[str, Any]:
    xr: dict[str, Any] = next(d for d in yaml.safe_load_all(HA.read_text()) if d and d["kind"] == "XRouter")
    for field in ("namespace", "uid"):
        xr["metadata"].pop(field)
    xr["spec"].update(spec)
    return xr


def _render(path: Path, ns: str) -> str:
    return subprocess.run(
        [str(OPERATOR), "render", "-f", str(path), "--namespace", ns],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _dry_run(cluster: Any, ns: str, text: str) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = cluster.kubectl(
        "-n", ns, "apply", "--dry-run=server", "-f", "-", input=text, check=False
    )
    return result


@pytest.mark.parametrize(
    ("label", "spec", "needle"),
    [
        ("url and sentinel", {"redis": {"urlSecretRef": REF, "sentinel": SENTINEL}}, "set either"),
        ("neither url nor sentinel", {"redis": {"failMode": "open"}}, "set either urlSecretRef or sentinel"),
        ("cluster and sentinel", {"redis": {"cluster": True, "sentinel": SENTINEL}}, "excludes sentinel"),
        (
            "a sentinel without a port",
            {"redis": {"sentinel": {**SENTINEL, "addresses": ["redis-sentinel"]}}},
            "spec.redis.sentinel.addresses[0]",
        ),
        (
            "url and cnpg",
            {"database": {"urlSecretRef": REF, "cnpg": {"cluster": "pg"}}},
            "set either urlSecretRef or cnpg",
        ),
        (
            "a backup of a database whose URL is in the SecretProviderClass",
            {
                "secretProviderClass": {"name": "vault"},
                "database": {"urlSecretRef": {"name": "vault", "key": "u"}},
            },
            "the backup Job reads the database URL from a Secret",
        ),
    ],
)
def test_contradictory_topologies_refused_naming_the_field(
    cluster: Any, ns: str, label: str, spec: dict[str, Any], needle: str
) -> None:
    r = _dry_run(cluster, ns, yaml.safe_dump(_xr(**spec)))
    assert r.returncode != 0, f"{label}: accepted"
    assert needle in r.stderr, f"{label}: {needle!r} not in {r.stderr!r}"


def test_sentinel_cnpg_and_cluster_accepted_and_rendered_objects_pass_dry_run(cluster: Any, ns: str) -> None:
    assert _dry_run(cluster, ns, yaml.safe_dump(_xr())).returncode == 0
    on_cluster = _xr(redis={"urlSecretRef": REF, "cluster": True})
    r = _dry_run(cluster, ns, yaml.safe_dump(on_cluster))
    assert r.returncode == 0, r.stderr
    rendered = _render(HA, ns)
    r = _dry_run(cluster, ns, rendered)
    assert r.returncode == 0, r.stderr
    for kind in ("deployment.apps/ha", "networkpolicy.networking.k8s.io/ha", "cronjob.batch/"):
        assert kind in r.stdout, r.stdout


def test_secret_provider_class_accepted_and_its_csi_volume_passes_dry_run(cluster: Any, ns: str) -> None:
    rendered = _render(VAULT, ns)
    xr = next(d for d in yaml.safe_load_all(VAULT.read_text()) if d and d["kind"] == "XRouter")
    for field in ("namespace", "uid"):
        xr["metadata"].pop(field)
    r = _dry_run(cluster, ns, yaml.safe_dump(xr) + "---\n" + rendered)
    assert r.returncode == 0, r.stderr
    assert "xrouter.xrouter.io/vault created (server dry run)" in r.stdout, r.stdout
    assert "deployment.apps/vault created (server dry run)" in r.stdout, r.stdout
