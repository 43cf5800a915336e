"""The fake Amazon Bedrock (``xrouter_dev.fake_bedrock``) in a subprocess on loopback,
and the router config that reaches it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .servers import FakeProvider

ACCESS_KEY = "AKIAFAKEROUTER01"
SECRET_KEY = "fake+secret/key/for-the-router"
API_KEY = "bedrock-api-key-fake"
WEB_TOKEN = "eyJhbGciOi.fake-service-account-token.sig"
CLAUDE = "us.anthropic.claude-3-5-sonnet-20240620-v1:0"  # a cross-region inference profile id
LLAMA = "meta.llama3-1-70b-instruct-v1:0"


class FakeBedrock(FakeProvider):
    """``/_stats``, ``/_last`` and ``/_reset`` as the fake provider's."""

    def __init__(self, ttl: float = 3600.0) -> None:
        super().__init__()
        self.ttl = ttl

    module = "xrouter_dev.fake_bedrock"

    def args(self) -> list[str]:
        return [
            "--access-key",
            ACCESS_KEY,
            "--secret-key",
            SECRET_KEY,
            "--api-key",
            API_KEY,
            "--web-identity-token",
            WEB_TOKEN,
            "--ttl",
            str(self.ttl),
        ]


def bedrock_config(
    fake: FakeBedrock, tmp: Path, aws: dict[str, Any] | None = None, **provider: Any
) -> dict[str, Any]:
    """One bedrock provider on the fake, signing with static keys from files (a mounted
    Secret) unless ``aws``/``provider`` say otherwise; routes ``claude``, ``llama``,
    and ``throttled`` (falls back to ``llama``)."""
    if aws is None:
        (tmp / "ak").write_text(ACCESS_KEY + "\n")
        (tmp / "sk").write_text(SECRET_KEY + "\n")
        aws = {"accessKeyId": {"file": str(tmp / "ak")}, "secretAccessKey": {"file": str(tmp / "sk")}}
    p: dict[str, Any] = {
        "name": "bedrock",
        "type": "bedrock",
        "region": "us-east-1",
        "baseUrl": fake.url,
        "maxRetries": 1,
        **provider,
    }
    if aws:
        p["aws"] = aws
    return {
        "providers": [p],
        "models": [
            {"name": "claude", "targets": [{"provider": "bedrock", "model": CLAUDE}]},
            {"name": "llama", "targets": [{"provider": "bedrock", "model": LLAMA}]},
            {
                "name": "throttled",
                "targets": [{"provider": "bedrock", "model": "throttle"}],
                "fallbacks": ["llama"],
            },
            {"name": "throttled-only", "targets": [{"provider": "bedrock", "model": "throttle"}]},
            {
                "name": "streamthrottle",
                "targets": [{"provider": "bedrock", "model": "streamthrottle"}],
                "fallbacks": ["llama"],
            },
            {"name": "guardrail", "targets": [{"provider": "bedrock", "model": "guardrail"}]},
            {"name": "badframe", "targets": [{"provider": "bedrock", "model": "badframe"}]},
        ],
        "keys": [{"name": "alpha", "secret": {"env": "KEY_ALPHA"}}],
        "database": {"spillDir": str(tmp / "spill")},
    }
