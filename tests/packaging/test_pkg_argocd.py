"""The Argo CD health check (config/argocd/health.lua), run with lupa against XRouter objects.

Fixtures: tests/packaging/fixtures/argocd/*.json (hand-written to the status contract) and, when
present, tests/fixtures/status/*.json (real objects saved by the operator's end-to-end tests).
Each file is a whole XRouter object (`kubectl get xrouter NAME -o json`) named
`<expected health>-<anything>.json`, with health one of healthy, progressing, degraded, suspended.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging_helpers import REPO
from xrouter_dev.argocd import HEALTH_LUA, health

ARGOCD_CM = REPO / "config" / "argocd" / "argocd-cm.yaml"
CM_KEY = "resource.customizations.health.xrouter.io_XRouter"
EXPECTED = {
    "healthy": "Healthy",
    "progressing": "Progressing",
    "degraded": "Degraded",
    "suspended": "Suspended",
}
FIXTURE_DIRS = [Path(__file__).parent / "fixtures" / "argocd", REPO / "tests" / "fixtures" / "status"]


def _fixtures() -> list[Path]:
    return sorted(p for d in FIXTURE_DIRS if d.is_dir() for p in d.glob("*.json"))


def test_argocd_cm_embeds_health_lua_verbatim() -> None:
    docs = [d for d in yaml.safe_load_all(ARGOCD_CM.read_text()) if d]
    assert len(docs) == 1 and docs[0]["kind"] == "ConfigMap" and docs[0]["metadata"]["name"] == "argocd-cm"
    assert docs[0]["data"][CM_KEY] == HEALTH_LUA.read_text(), (
        "config/argocd/argocd-cm.yaml must embed config/argocd/health.lua unchanged"
    )


def test_there_are_fixtures_for_every_health() -> None:
    seen = {p.name.split("-", 1)[0].removesuffix(".json") for p in _fixtures()}
    assert set(EXPECTED) <= seen


@pytest.mark.parametrize("path", _fixtures(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_health_of_fixture(path: Path) -> None:
    prefix = path.name.split("-", 1)[0].removesuffix(".json")
    assert prefix in EXPECTED, f"{path.name}: name it <{'|'.join(EXPECTED)}>-<what>.json"
    obj = json.loads(path.read_text())
    if "items" in obj:  # a saved list
        pytest.fail(f"{path}: save one XRouter object per file, not a List")
    assert obj.get("kind") == "XRouter", f"{path}: expected a whole XRouter object (kubectl get -o json)"
    result = health(obj)
    assert result["status"] == EXPECTED[prefix], result
    assert isinstance(result.get("message"), str) and result["message"], result


def _ready() -> dict[str, Any]:
    return json.loads((FIXTURE_DIRS[0] / "healthy-ready.json").read_text())


def test_unobserved_generation_wins_over_ready() -> None:
    obj = _ready()
    obj["metadata"]["generation"] = obj["status"]["observedGeneration"] + 1
    assert health(obj)["status"] == "Progressing"
    del obj["status"]["observedGeneration"]
    assert health(obj)["status"] == "Progressing"


def test_suspended_wins_over_everything() -> None:
    obj = _ready()
    obj["spec"]["suspend"] = True
    obj["status"]["conditions"][2]["status"] = "True"
    assert health(obj)["status"] == "Suspended"
    obj["spec"]["suspend"] = False
    assert health(obj)["status"] == "Degraded"


def test_degraded_message_comes_from_the_condition() -> None:
    obj = _ready()
    obj["status"]["conditions"][2].update(
        status="True", reason="ForeignObject", message="Service x is not ours"
    )
    assert health(obj) == {"status": "Degraded", "message": "Service x is not ours"}


def test_not_ready_without_degraded_is_progressing() -> None:
    obj = _ready()
    obj["status"]["conditions"] = [{"type": "Ready", "status": "Unknown", "reason": "Starting"}]
    assert health(obj) == {"status": "Progressing", "message": "Starting"}


def test_scaled_to_zero_is_suspended_but_degraded_still_wins() -> None:
    obj = _ready()
    obj["spec"]["replicas"] = 0
    obj["status"]["replicaSummary"] = "0/0"
    obj["status"]["conditions"][0].update(
        status="False", reason="ScaledToZero", message="scaled to 0 replicas: no router pod is running"
    )
    assert health(obj) == {"status": "Suspended", "message": "scaled to 0 replicas: no router pod is running"}
    obj["status"]["conditions"][2].update(status="True", reason="SecretMissing", message="no Secret")
    assert health(obj)["status"] == "Degraded"


def test_canary_in_progress_is_progressing_and_aborted_is_degraded() -> None:
    obj = _ready()
    conds = [c for c in obj["status"]["conditions"] if c["type"] not in ("Progressing", "Degraded")]
    step = {
        "type": "Progressing",
        "status": "True",
        "reason": "CanaryProgressing",
        "message": "canary step 1/4",
    }
    obj["status"]["conditions"] = [*conds, step]
    assert health(obj) == {"status": "Progressing", "message": "canary step 1/4"}
    aborted = {"type": "Degraded", "status": "True", "reason": "RolloutAborted", "message": "rolled back"}
    obj["status"]["conditions"] = [*conds, aborted]
    assert health(obj)["status"] == "Degraded"
