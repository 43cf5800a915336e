"""Agent sessions that keep their prompt cache: each client names its session in a
header (found in its recorded requests), and a ``strategy: hash`` route with
``hashKey: header:<that header>`` keeps every request of one session on one target
(one upstream account or deployment, whose prompt cache holds the session's prefix),
while different sessions spread over the targets."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from . import agentclients
from .conftest import KEY, StartRouter, base_config
from .test_agent_fixtures import FIXTURES

# client → (its session header, the path it calls, the provider type that passes it through)
SESSIONS = {
    "claude": ("x-claude-code-session-id", "anthropic", ""),
    "codex": ("session-id", "openai", "/v1"),
}


@pytest.mark.parametrize("client", list(SESSIONS))
def test_one_session_stays_on_one_target(start_router: StartRouter, tmp_path: Path, client: str) -> None:
    header, provider_type, suffix = SESSIONS[client]
    recorded = json.loads((FIXTURES / f"{client}.json").read_text())
    # The header is really what the client sends, on every request of a session.
    assert all(header in r["headers"] for r in recorded), [sorted(r["headers"]) for r in recorded]
    upstream = agentclients.upstream_for(client, tmp_path / "project")
    upstream.start()
    try:
        config = base_config("http://127.0.0.1:1", tmp_path)
        config["providers"] = [
            {"name": name, "type": provider_type, "baseUrl": upstream.url + suffix, "maxRetries": 0}
            for name in ("account-a", "account-b")
        ]
        targets = [{"provider": "account-a", "model": "up-a"}, {"provider": "account-b", "model": "up-b"}]
        route = {"strategy": "hash", "hashKey": f"header:{header}"}
        config["models"] = [{"name": agentclients.MODEL, "targets": targets, **route}]
        config["keys"] = config["keys"][:1]
        config["prices"] = {}
        router = start_router(config)
        auth = {"x-api-key": KEY} if client == "claude" else {"authorization": f"Bearer {KEY}"}
        seen: dict[str, set[str]] = defaultdict(set)
        for n in range(12):
            session = f"session-{n}"
            for r in recorded:
                before = len(upstream.requests)
                headers = {**r["headers"], **auth, header: session}
                body = {**r["body"], "model": agentclients.MODEL}
                resp = httpx.post(router.url + r["path"], headers=headers, json=body, timeout=30)
                assert resp.status_code == 200, resp.text[:1000]
                seen[session].update(q["body"]["model"] for q in upstream.requests[before:])
    finally:
        upstream.stop()
    assert all(len(models) == 1 for models in seen.values()), dict(seen)
    assert set().union(*seen.values()) == {"up-a", "up-b"}, "the sessions should spread over both targets"
