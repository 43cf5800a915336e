"""`make test` runs the unit tests in two groups (before and after the Go tools are built): every
test directory must be in one of them, or its tests would silently stop running in CI."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def make_var(name: str) -> set[str]:
    match = re.search(rf"^{name} := (.*)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert match, f"Makefile has no {name}"
    return set(match.group(1).split())


def test_every_test_directory_runs_in_make_test() -> None:
    dirs = {p.parent.relative_to(REPO).parts[:2] for p in (REPO / "tests").rglob("test_*.py")}
    # tests/e2e's conftest marks everything collected there `e2e`: test-e2e runs it.
    wanted = {"/".join(d) for d in dirs} - {"tests/e2e"}
    first, tools = make_var("UNIT_FIRST"), make_var("UNIT_TOOLS")
    assert not first & tools, f"in both groups: {sorted(first & tools)}"
    assert wanted <= first | tools, f"not run by make test: {sorted(wanted - first - tools)}"


def test_tests_that_run_go_tools_wait_for_them() -> None:
    # helm and kubectl are skipped when missing (a developer may not have built them), so a test
    # that runs them in the first group would be skipped on every cold CI run.
    first = make_var("UNIT_FIRST")
    for path in (REPO / "tests").rglob("test_*.py"):
        group = "/".join(path.relative_to(REPO).parts[:2])
        if group in first and path != Path(__file__).resolve():
            text = path.read_text()
            assert "require_helm" not in text and "kubectl_bin" not in text, f"{path}: runs a Go tool"
