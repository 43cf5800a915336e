"""Golden files for the pure render. Regenerate with `make golden` (and review the diff).

Each ``golden/<case>.input.yaml`` holds an XRouter and optionally a ``kind: RenderInputs``
document; ``golden/<case>.expected.yaml`` is what ``render`` must print for it. The case
``sample`` renders ``config/samples/xrouter.yaml``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from xrouter_operator.cli import to_yaml
from xrouter_operator.policy import ServiceFacts
from xrouter_operator.render import RenderInputs, parse, render

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
SAMPLE = ROOT / "config" / "samples" / "xrouter.yaml"
UPDATE = os.environ.get("XROUTER_UPDATE_GOLDEN") == "1"


def load_case(path: Path) -> tuple[dict[str, Any], RenderInputs]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    xr = next(d for d in docs if d.get("kind") == "XRouter")
    raw = next((d for d in docs if d.get("kind") == "RenderInputs"), {})
    inputs = RenderInputs(
        admin_key=raw.get("adminKey", "golden-admin-key"),
        admin_key_rotation=raw.get("adminKeyRotation", ""),
        monitoring_kinds=frozenset(raw.get("monitoringKinds", [])),
        services={
            ref: ServiceFacts(selector=f["selector"], ports=tuple((p, t) for p, t in f["ports"]))
            for ref, f in raw.get("services", {}).items()
        },
    )
    if path == SAMPLE:
        xr["metadata"] = {
            **xr["metadata"],
            "namespace": "default",
            "uid": "00000000-0000-0000-0000-00000000000s",
        }
    return xr, inputs


CASES = {p.name.removesuffix(".input.yaml"): p for p in sorted(GOLDEN.glob("*.input.yaml"))}
CASES["sample"] = SAMPLE


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    xr, inputs = load_case(CASES[case])
    got = to_yaml(render(parse(xr), inputs))
    expected = GOLDEN / f"{case}.expected.yaml"
    if UPDATE:
        expected.write_text(got)
    assert expected.exists(), f"missing {expected}; run `make golden`"
    assert got == expected.read_text(), f"render changed for {case}; run `make golden` and review the diff"


def test_no_child_carries_the_owners_labels_or_annotations() -> None:
    xr, inputs = load_case(CASES["full"])
    for m in render(parse(xr), inputs):
        labels = m["metadata"]["labels"]
        assert "app.kubernetes.io/instance" not in labels, m["kind"]
        assert "xrouter.io/rotate-admin-key" not in m["metadata"].get("annotations", {}), m["kind"]
        assert labels["app.kubernetes.io/managed-by"] == "xrouter-operator"
        assert labels["xrouter.io/instance"] == "prod"
        assert labels["app.kubernetes.io/name"] == "xrouter"
        if m["kind"] == "PersistentVolumeClaim":  # backup dumps outlive the XRouter by default
            assert "ownerReferences" not in m["metadata"]
        else:
            assert m["metadata"]["ownerReferences"][0]["controller"] is True
