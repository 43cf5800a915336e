"""Helpers shared by tests/packaging: repo paths, tool lookup, a tiny Dockerfile parser."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XROUTER_CACHE_DIR", Path.home() / ".cache" / "xrouter"))
CHART = REPO / "charts" / "xrouter"


# --- tools -------------------------------------------------------------------------------------------


def helm_bin() -> str | None:
    """The helm binary built by the control-plane issue (hack/build-tools.sh), else one on PATH."""
    try:
        from xrouter_dev.cluster import tools_bin

        return str(tools_bin("helm"))
    except (ImportError, FileNotFoundError):
        pass
    tools_dir = Path(os.environ.get("XROUTER_TOOLS_DIR", CACHE / "tools"))
    candidate = tools_dir / "bin" / "helm"
    if candidate.exists():
        return str(candidate)
    return shutil.which("helm")


def require_helm() -> str:
    helm = helm_bin()
    if helm is None:
        pytest.skip("helm is not built yet: run `make tools` (hack/build-tools.sh)")
    return helm


def kubectl_bin() -> str | None:
    tools_dir = Path(os.environ.get("XROUTER_TOOLS_DIR", CACHE / "tools"))
    candidate = tools_dir / "bin" / "kubectl"
    if candidate.exists():
        return str(candidate)
    return shutil.which("kubectl")


# --- Dockerfiles -----------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str  # upper case
    value: str  # the rest of the (joined) line
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def exec_form(self, keyword: str) -> list[str] | None:
        """The last ENTRYPOINT/CMD of this stage, which must be in exec (JSON) form."""
        found = self.all(keyword)
        if not found:
            return None
        value = json.loads(found[-1].value)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), found[-1]
        return value


@dataclass
class Dockerfile:
    args: dict[str, str]
    stages: list[Stage]
    comments: list[tuple[int, str]]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def parse_dockerfile(path: Path) -> Dockerfile:
    """Enough of the Dockerfile grammar for our own files: comments, `\\` continuations, ARG, FROM."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    comments: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#"):
            comments.append((number, stripped))
            continue
        if not stripped and not pending:
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        line = (pending + stripped).strip()
        pending = ""
        keyword, _, value = line.partition(" ")
        keyword = keyword.upper()
        value = value.strip()
        if keyword == "ARG" and not stages:
            name, _, default = value.partition("=")
            args[name] = default
            continue
        if keyword == "FROM":
            parts = value.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), ""), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
            continue
        assert stages, f"{path}:{number}: {keyword} before FROM"
        stages[-1].instructions.append(Instruction(keyword, value, start))
    return Dockerfile(args=args, stages=stages, comments=comments)


# --- a clean virtualenv built the way the Dockerfiles build /opt/venv ---------------------------------


def lock_hash() -> str:
    digest = hashlib.sha256()
    digest.update((REPO / "constraints.txt").read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()[:16]


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result  # type: ignore[no-any-return]


IMAGE_VENV = "/opt/venv"


def _substitute(command: str, venv: Path) -> str:
    # Call pip through the venv's python, so a copied venv never runs the cached venv's pip.
    command = command.replace(f"{IMAGE_VENV}/bin/pip", f"{venv}/bin/python -m pip")
    command = command.replace(IMAGE_VENV, str(venv))
    return re.sub(r"(^|&&\s*)python ", lambda m: f"{m.group(1)}{sys.executable} ", command)


def _replay(instructions: list[Instruction], workdir: Path, venv: Path, env: dict[str, str]) -> None:
    for ins in instructions:
        if ins.keyword == "ENV":
            for pair in ins.value.split():
                key, _, value = pair.partition("=")
                env[key] = value.replace("$PATH", env.get("PATH", ""))
        elif ins.keyword == "COPY":
            assert "--from" not in ins.value, ins
            *sources, dest = ins.value.split()
            for source in sources:
                src = REPO / source
                if src.is_dir():
                    shutil.copytree(
                        src,
                        workdir / dest,
                        dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"),
                    )
                    continue
                to = workdir / dest
                if dest.endswith("/"):
                    to.mkdir(parents=True, exist_ok=True)
                    to = to / src.name
                shutil.copy2(src, to)
        elif ins.keyword == "RUN":
            command = _substitute(ins.value, venv)
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert result.returncode == 0, (
                f"Dockerfile line {ins.line}: {command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )


def build_image_venv(dockerfile: Path, dest: Path) -> Path:
    """Replay the builder stage's COPY/RUN/ENV steps without Docker, with /opt/venv -> dest/venv.

    Like Docker's layer cache, the steps up to and including the one that installs the lock
    (constraints.txt) are cached under ~/.cache/xrouter/image-venv/<hash>; the project itself is
    installed fresh on every call.
    """
    builder = parse_dockerfile(dockerfile).stages[0]
    steps = builder.instructions
    lock_step = next(
        i for i, ins in enumerate(steps) if ins.keyword == "RUN" and "constraints.txt" in ins.value
    )
    key = hashlib.sha256(
        (lock_hash() + "\n".join(f"{s.keyword} {s.value}" for s in steps[: lock_step + 1])).encode()
    ).hexdigest()[:16]
    base = CACHE / "image-venv" / key
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON", "PIP_"))}
    if not (base / ".complete").exists():
        shutil.rmtree(base, ignore_errors=True)
        (base / "src").mkdir(parents=True)
        _replay(steps[: lock_step + 1], base / "src", base / "venv", dict(env))
        (base / ".complete").write_text(lock_hash())
    venv = dest / "venv"
    shutil.copytree(base / "venv", venv, symlinks=True)
    workdir = dest / "src"
    workdir.mkdir(parents=True)
    # ENV from the cached steps still applies to the rest of the build.
    _replay([s for s in steps[: lock_step + 1] if s.keyword == "ENV"], workdir, venv, env)
    _replay(steps[lock_step + 1 :], workdir, venv, env)
    return venv
