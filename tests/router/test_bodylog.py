"""``server.logBodies``: bodies in the log at debug level, credentials redacted; off,
nothing of the body is logged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xrouter_router.bodylog import REDACTED, redact

from .conftest import StartRouter, base_config, client
from .servers import FakeProvider

MSG: Any = [{"role": "user", "content": "the secret word is sk-proj-abcdef123456"}]


def test_redact_credentials_but_not_token_counts() -> None:
    out = redact(
        {
            "api_key": "k1",
            "Authorization": "Bearer x",
            "metadata": {"client_secret": "s", "password": "p", "note": "Bearer abc.def"},
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "use sk-live-1234567890 please"}],
        }
    )
    assert out["api_key"] == out["Authorization"] == REDACTED
    assert out["metadata"] == {"client_secret": REDACTED, "password": REDACTED, "note": REDACTED}
    assert out["max_tokens"] == 5
    assert out["messages"][0]["content"] == f"use {REDACTED} please"


def test_log_bodies_logs_redacted_bodies_at_debug(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path
) -> None:
    config = base_config(provider.url, tmp_path, server={"logBodies": True})
    router = start_router(config, {"XROUTER_LOG_LEVEL": "DEBUG"})
    client(router).chat.completions.create(model="gpt", messages=MSG)
    lines = [json.loads(line) for line in router.log().splitlines() if '"xrouter.bodies"' in line]
    bodies = {line["msg"]: line["body"] for line in lines}
    assert bodies["request body"]["messages"][0]["content"] == f"the secret word is {REDACTED}"
    assert bodies["response body"]["choices"][0]["message"]["content"] == f"the secret word is {REDACTED}"
    assert "sk-proj-abcdef123456" not in router.log()
    assert "sk-upstream-secret" not in router.log()


def test_bodies_are_not_logged_by_default(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path
) -> None:
    router = start_router(base_config(provider.url, tmp_path), {"XROUTER_LOG_LEVEL": "DEBUG"})
    client(router).chat.completions.create(model="gpt", messages=MSG)
    assert "xrouter.bodies" not in router.log()
    assert "sk-proj-abcdef123456" not in router.log()
