"""Claude Code and Codex CLI, run non-interactively (``claude -p``, ``codex exec``)
against a base URL: the installs ``make agents`` (hack/install-agents.sh) keeps in
~/.cache/xrouter/agents, a throwaway home each, and every switch they document for
their own outside traffic turned off, so a run needs nothing but the base URL."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .agentupstream import AgentUpstream

AGENTS_DIR = Path(os.environ.get("XROUTER_AGENTS_DIR", Path.home() / ".cache/xrouter/agents"))
BIN = AGENTS_DIR / "node_modules/.bin"
MODEL = "agent-model"
MADE = "made-by-tool.txt"
WRITTEN = "written by the tool"
PROMPT = f"Create the file {MADE}"

# Claude Code: CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC stops telemetry, error
# reports, update checks and release notes together; the others say the same again
# for older releases. Its side requests (titles, summaries) use the small-model names.
CLAUDE_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_BUG_COMMAND": "1",
    "ANTHROPIC_MODEL": MODEL,
    "ANTHROPIC_DEFAULT_HAIKU_MODEL": MODEL,
    "ANTHROPIC_DEFAULT_SONNET_MODEL": MODEL,
    "ANTHROPIC_DEFAULT_OPUS_MODEL": MODEL,
}

# Codex: a provider of our own (Responses API, the key from XROUTER_KEY), no analytics,
# no update check, no plugin sync (plugins fetch a catalog at start-up), no OTel export.
CODEX_CONFIG = """\
model = "{model}"
model_provider = "xrouter"
check_for_update_on_startup = false

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false

[otel]
exporter = "none"

[model_providers.xrouter]
name = "xrouter"
base_url = "{base_url}"
env_key = "XROUTER_KEY"
wire_api = "responses"
"""


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    project: Path

    @property
    def made(self) -> str | None:
        """What the tool wrote, or None if it never ran."""
        path = self.project / MADE
        return path.read_text() if path.exists() else None


def installed() -> str | None:
    """None when both clients are installed, else what to run."""
    if (BIN / "claude").exists() and (BIN / "codex").exists():
        return None
    return f"the agent clients are not installed in {BIN}: run `make agents`"


def _dirs(work: Path) -> tuple[Path, Path]:
    home, project = work / "home", work / "project"
    home.mkdir(parents=True, exist_ok=True)
    project.mkdir(parents=True, exist_ok=True)
    return home, project


def _env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    # Nothing of the caller's environment but PATH: no proxy, no real key, no config.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8", **extra}


def claude(base_url: str, key: str, work: Path, timeout: float = 180) -> Run:
    """``claude -p`` asked to create the file; Write is allowed (acceptEdits)."""
    home, project = _dirs(work)
    env = _env(home, {**CLAUDE_ENV, "ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": key})
    cmd = [str(BIN / "claude"), "-p", PROMPT, "--permission-mode", "acceptEdits", "--output-format", "text"]
    p = subprocess.run(
        cmd, cwd=project, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    return Run(p.returncode, p.stdout, p.stderr, project)


def codex(base_url: str, key: str, work: Path, timeout: float = 180) -> Run:
    """``codex exec`` asked to create the file, its sandbox off (the test's temp dir is the box)."""
    home, project = _dirs(work)
    codex_home = home / ".codex"
    codex_home.mkdir(exist_ok=True)
    (codex_home / "config.toml").write_text(CODEX_CONFIG.format(model=MODEL, base_url=base_url))
    env = _env(home, {"CODEX_HOME": str(codex_home), "XROUTER_KEY": key})
    cmd = [
        str(BIN / "codex"),
        "exec",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        PROMPT,
    ]
    p = subprocess.run(
        cmd, cwd=project, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    return Run(p.returncode, p.stdout, p.stderr, project)


def upstream_for(client: str, project: Path) -> AgentUpstream:
    """The scripted upstream that makes ``client`` run its file-writing tool."""
    if client == "claude":
        return AgentUpstream("Write", {"file_path": str(project / MADE), "content": WRITTEN + "\n"})
    return AgentUpstream("exec_command", {"cmd": f"echo {WRITTEN} > {MADE} && echo created"})


RUNNERS: dict[str, Any] = {"claude": claude, "codex": codex}
