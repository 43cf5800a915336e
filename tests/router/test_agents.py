"""Claude Code and Codex CLI through the router, end to end: each client on each path
(its own API passed through, and translated to another provider type) finishes one
agent loop: the scripted upstream asks for a tool call, the client runs the tool (a
file appears in its project), sends the result back, and prints the final answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from . import agentclients
from .agentupstream import DONE, AgentUpstream
from .conftest import KEY, StartRouter, base_config

# client → path → the provider that serves it (type, and the base URL's suffix).
PROVIDERS: dict[str, dict[str, tuple[str, str]]] = {
    "claude": {"pass-through": ("anthropic", ""), "translated": ("openai-compatible", "/v1")},
    "codex": {"pass-through": ("openai", "/v1"), "translated": ("anthropic", "")},
}
CASES = [(client, path) for client in PROVIDERS for path in PROVIDERS[client]]


def agent_config(upstream: AgentUpstream, tmp: Path, provider_type: str, suffix: str, **route: Any) -> Any:
    config = base_config("http://127.0.0.1:1", tmp)
    config["providers"] = [
        {
            "name": "up",
            "type": provider_type,
            "baseUrl": upstream.url + suffix,
            "apiKey": {"env": "FAKE_API_KEY"},
            "maxRetries": 0,
        }
    ]
    config["models"] = [
        {"name": agentclients.MODEL, "targets": [{"provider": "up", "model": "up-model"}], **route}
    ]
    config["prices"] = {}
    config["keys"] = config["keys"][:1]
    return config


@pytest.mark.parametrize(("client", "path"), CASES)
def test_agent_loop(start_router: StartRouter, tmp_path: Path, client: str, path: str) -> None:
    missing = agentclients.installed()
    assert missing is None, missing
    upstream = agentclients.upstream_for(client, tmp_path / "project")
    upstream.start()
    try:
        provider_type, suffix = PROVIDERS[client][path]
        router = start_router(agent_config(upstream, tmp_path, provider_type, suffix))
        base = router.url if client == "claude" else router.url + "/v1"
        run = agentclients.RUNNERS[client](base, KEY, tmp_path)
    finally:
        upstream.stop()
    detail = f"stdout:\n{run.stdout[-2000:]}\nstderr:\n{run.stderr[-2000:]}\nrouter:\n{router.log()[-2000:]}"
    assert run.returncode == 0, detail
    # The tool ran in the client's project, with what the upstream asked for.
    assert run.made == agentclients.WRITTEN + "\n", detail
    # The final answer came back from the upstream, quoting the tool's result.
    assert DONE in run.stdout, detail
    loop = [r for r in upstream.requests if r["body"].get("tools")]
    assert len(loop) >= 2, [r["path"] for r in upstream.requests]
