"""``/v1/messages`` and its ``count_tokens`` as the Anthropic API's own clients see
them on the pass-through: system turns anywhere in ``messages``, the client's
``anthropic-beta`` and ``anthropic-version`` headers, and errors in Anthropic's shape
on every path, the router's own unexpected 500 included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from xrouter_router.asgi import Boundary, Receive, Scope, Send

from .conftest import KEY, StartRouter, base_config
from .servers import FakeProvider, Router

BETA = "claude-code-20250219,context-management-2025-06-27"
HEADERS = {"x-api-key": KEY, "anthropic-beta": BETA, "anthropic-version": "2024-01-01"}


@pytest.fixture
def router(start_router: StartRouter, provider: FakeProvider, tmp_path: Path) -> Router:
    return start_router(base_config(provider.url, tmp_path))


def test_system_turns_pass_through_unchanged(router: Router, provider: FakeProvider) -> None:
    """Claude Code puts its environment in a system turn inside ``messages``; the
    Anthropic API takes it, so the pass-through sends it as it came."""
    messages: Any = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {
            "role": "system",
            "content": [{"type": "text", "text": "env", "cache_control": {"type": "ephemeral"}}],
        },
    ]
    resp = httpx.post(
        router.url + "/v1/messages",
        headers=HEADERS,
        json={"model": "claude", "max_tokens": 20, "messages": messages},
    )
    assert resp.status_code == 200, resp.text
    sent = provider.last()
    assert sent["body"]["messages"] == messages
    assert sent["headers"]["anthropic-beta"] == BETA
    assert sent["headers"]["anthropic-version"] == "2024-01-01"


def test_count_tokens_forwards_the_client_headers(router: Router, provider: FakeProvider) -> None:
    resp = httpx.post(
        router.url + "/v1/messages/count_tokens",
        headers=HEADERS,
        json={"model": "claude", "messages": [{"role": "user", "content": "one two"}]},
    )
    assert resp.status_code == 200, resp.text
    sent = provider.last()
    assert sent["path"] == "/v1/messages/count_tokens"
    assert sent["headers"]["anthropic-beta"] == BETA
    assert sent["headers"]["anthropic-version"] == "2024-01-01"
    # Without them, the router's own version and no beta.
    httpx.post(
        router.url + "/v1/messages/count_tokens",
        headers={"x-api-key": KEY},
        json={"model": "claude", "messages": [{"role": "user", "content": "one two"}]},
    )
    assert provider.last()["headers"]["anthropic-version"] == "2023-06-01"
    assert "anthropic-beta" not in provider.last()["headers"]


def test_wrong_method_in_anthropic_shape(router: Router) -> None:
    resp = httpx.get(router.url + "/v1/messages", headers={"x-api-key": KEY})
    assert resp.status_code == 405
    assert resp.json()["type"] == "error" and resp.json()["error"]["type"] == "invalid_request_error"
    # Elsewhere, OpenAI's shape as before.
    assert "error" in httpx.get(router.url + "/v1/chat/completions").json()


async def _broken(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("a bug")


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/v1/messages", "anthropic"),
        ("/v1/messages/count_tokens", "anthropic"),
        ("/v1/chat/completions", "openai"),
    ],
)
async def test_unexpected_500_in_the_front_doors_shape(path: str, shape: str) -> None:
    transport = httpx.ASGITransport(app=Boundary(_broken))
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as c:
        resp = await c.post(path, json={})
    assert resp.status_code == 500
    body = resp.json()
    rid = resp.headers["x-request-id"]
    if shape == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "api_error"
        assert rid in body["error"]["message"]
    else:
        assert body["error"]["type"] == "internal_error" and rid in body["error"]["message"]
