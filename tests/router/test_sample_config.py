"""The README's quick start: config/samples/router.yaml with $XROUTER_SAMPLE_KEY, no Redis,
no database, no provider account."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
import yaml

from .conftest import StartRouter, client

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "samples" / "router.yaml"


def test_sample_config_serves_the_mock_provider(start_router: StartRouter) -> None:
    router = start_router(yaml.safe_load(SAMPLE.read_text()), env={"XROUTER_SAMPLE_KEY": "sk-readme"})
    sdk = client(router, key="sk-readme")
    reply = sdk.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content == "hello"
    assert [m.id for m in sdk.models.list()] == ["echo", "echo-long", "claude-code", "codex"]
    raw = sdk.chat.completions.with_raw_response.create(
        model="echo", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-xrouter-cache"] == "miss"  # the sample caches, but has no Redis
    with pytest.raises(openai.AuthenticationError):
        client(router, key="sk-not-the-sample").chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hello"}]
        )
