"""The real node's host changes: what prepare claims is what teardown removes."""

from __future__ import annotations

from pathlib import Path

from xrouter_dev.nodehost import claim_cgroups


def _hierarchy(root: Path, name: str) -> Path:
    h = root / name
    h.mkdir()
    (h / "cgroup.procs").write_text("")
    return h


def test_a_cgroup_a_killed_node_left_is_claimed_for_teardown(tmp_path: Path) -> None:
    fresh, stale = _hierarchy(tmp_path, "cpu"), _hierarchy(tmp_path, "memory")
    (stale / "xrouter-node").mkdir()  # a node SIGKILLed before its teardown left this
    (tmp_path / "not-a-hierarchy").mkdir()
    claimed = claim_cgroups(tmp_path)
    assert claimed == [str(fresh / "xrouter-node"), str(stale / "xrouter-node")]
    assert (fresh / "xrouter-node").is_dir()
    assert not (tmp_path / "not-a-hierarchy" / "xrouter-node").exists()
