"""What Claude Code and Codex CLI send, kept in tests/fixtures/agents/<client>.json
(``make agent-fixtures`` re-records it). Each client runs its tool loop straight
against the scripted upstream, and the shape of what it sent (paths, header names
and the API headers' values, every JSON key, every ``type`` and ``role``) must match
the recording: a client upgrade that changes its wire format fails here, not in a
user's report. The recordings also replay through the router on both paths."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from . import agentclients
from .conftest import KEY, StartRouter
from .test_agents import PROVIDERS, agent_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agents"
RECORD = os.environ.get("XROUTER_RECORD_AGENTS") == "1"
# Values that are the wire format itself; every other string is just "str".
_KEEP = frozenset({"type", "role"})
# Header values that are part of the API contract; other headers count by name.
_HEADER_VALUES = frozenset({"anthropic-version", "anthropic-beta", "content-type", "accept"})
# Per connection or per run: never part of the format.
_VOLATILE = frozenset({"host", "content-length", "connection", "accept-encoding"})
# Tool schemas change with every release's tools; their keys are not the wire format.
_OPAQUE = frozenset({"input_schema", "parameters"})
_LONG = 160


def _trim(value: Any) -> Any:
    """A recording small enough to keep: long strings (prompts, tool descriptions) cut."""
    if isinstance(value, dict):
        return {k: _trim(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trim(v) for v in value]
    if isinstance(value, str) and len(value) > _LONG:
        return value[:_LONG] + "…"
    return value


def shape(value: Any, key: str | None = None) -> Any:
    if key in _OPAQUE:
        return "schema"
    if isinstance(value, dict):
        return {k: shape(v, k) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return sorted({json.dumps(shape(v), sort_keys=True) for v in value})
    if isinstance(value, str):
        return value if key in _KEEP else "str"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "null"


def request_shapes(requests: list[dict[str, Any]]) -> list[str]:
    out = set()
    for r in requests:
        headers = {
            k: (v if k in _HEADER_VALUES else "str") for k, v in r["headers"].items() if k not in _VOLATILE
        }
        out.add(json.dumps({"path": r["path"], "headers": headers, "body": shape(r["body"])}, sort_keys=True))
    return sorted(out)


def _record(client: str, tmp: Path) -> list[dict[str, Any]]:
    upstream = agentclients.upstream_for(client, tmp / "project")
    upstream.start()
    try:
        base = upstream.url if client == "claude" else upstream.url + "/v1"
        run = agentclients.RUNNERS[client](base, "sk-recording", tmp)
    finally:
        upstream.stop()
    assert run.returncode == 0 and run.made is not None, run.stdout + run.stderr
    return [
        {
            "path": r["path"],
            "headers": {k: v for k, v in r["headers"].items() if k not in _VOLATILE},
            "body": _trim(r["body"]),
        }
        for r in upstream.requests
    ]


@pytest.mark.parametrize("client", ["claude", "codex"])
def test_wire_format_matches_the_recording(tmp_path: Path, client: str) -> None:
    missing = agentclients.installed()
    assert missing is None, missing
    recorded = _record(client, tmp_path)
    path = FIXTURES / f"{client}.json"
    if RECORD:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(recorded, indent=1, ensure_ascii=False) + "\n")
    kept = json.loads(path.read_text())
    new, old = request_shapes(recorded), request_shapes(kept)
    changed = {"new": [s for s in new if s not in old], "gone": [s for s in old if s not in new]}
    assert new == old, (
        f"{client}'s requests changed shape; check the front doors against them, then "
        f"`make agent-fixtures`:\n{json.dumps(changed, indent=1)[:6000]}"
    )


def test_shape_sees_a_new_field_and_a_new_block_type() -> None:
    base = {
        "path": "/v1/messages",
        "headers": {"anthropic-beta": "a"},
        "body": {"messages": [{"type": "text"}]},
    }
    assert request_shapes([base]) == request_shapes([json.loads(json.dumps(base))])
    assert request_shapes([base]) != request_shapes([{**base, "body": {"messages": [{"type": "image"}]}}])
    assert request_shapes([base]) != request_shapes([{**base, "body": {"messages": [], "top_k": 1}}])
    assert request_shapes([base]) != request_shapes([{**base, "headers": {"anthropic-beta": "a,b"}}])


@pytest.mark.parametrize(("client", "path"), [(c, p) for c in PROVIDERS for p in PROVIDERS[c]])
def test_recorded_requests_replay_through_the_router(
    start_router: StartRouter, tmp_path: Path, client: str, path: str
) -> None:
    """Every recorded request, sent as the client sent it (headers and body), gets its
    answer on both paths: no 4xx for a part of the format the router does not know."""
    upstream = agentclients.upstream_for(client, tmp_path / "project")
    upstream.start()
    try:
        provider_type, suffix = PROVIDERS[client][path]
        router = start_router(agent_config(upstream, tmp_path, provider_type, suffix))
        for r in json.loads((FIXTURES / f"{client}.json").read_text()):
            auth = {"x-api-key": KEY} if client == "claude" else {"authorization": f"Bearer {KEY}"}
            body = {**r["body"], "model": agentclients.MODEL}
            resp = httpx.post(router.url + r["path"], headers={**r["headers"], **auth}, json=body, timeout=30)
            assert resp.status_code == 200, (r["path"], resp.text[:2000])
    finally:
        upstream.stop()
