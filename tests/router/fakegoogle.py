"""The fake Gemini API and Vertex AI (``xrouter_dev.fake_google``) in a subprocess on
loopback, a service-account key it trusts, and the router config that reaches it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .servers import FakeProvider

API_KEY = "AIza-fake-gemini-key"
EMAIL = "router@fake-project.iam.gserviceaccount.com"
PROJECT = "fake-project"
GEMINI = "gemini-2.0-flash-001"
CLAUDE = "claude-sonnet-4@20250514"


class FakeGoogle(FakeProvider):
    """``/_stats``, ``/_last`` and ``/_reset`` as the fake provider's; ``key_file`` is a
    service-account key (JSON) whose public half the fake checks JWTs with."""

    def __init__(self, workdir: Path, ttl: float = 3600.0) -> None:
        super().__init__()
        self.ttl = ttl
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        self.public = workdir / "sa-public.pem"
        self.public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self.key_file = workdir / "sa.json"
        info = {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "fake-key-1",
            "private_key": pem,
            "client_email": EMAIL,
            "token_uri": f"{self.url}/token",
        }
        self.key_file.write_text(json.dumps(info))

    module = "xrouter_dev.fake_google"

    def args(self) -> list[str]:
        return [
            "--api-key",
            API_KEY,
            "--sa-email",
            EMAIL,
            "--sa-public-key",
            str(self.public),
            "--ttl",
            str(self.ttl),
        ]


def google_config(fake: FakeGoogle, tmp: Path, vertex: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``gemini`` provider (API key from a file) and a ``vertex`` one (the service-account
    key unless ``vertex`` says otherwise); routes ``gemini``, ``blocked``, ``unsafe``,
    ``exhausted`` (falls back to ``gemini``), ``vgemini`` and ``vclaude``."""
    (tmp / "gemini-key").write_text(API_KEY)
    v: dict[str, Any] = {
        "name": "vertex",
        "type": "vertex",
        "region": "us-east5",
        "project": PROJECT,
        "baseUrl": fake.url,
        "googleCredentials": {"file": str(fake.key_file)},
    }
    v.update(vertex or {})
    v = {k: x for k, x in v.items() if x is not None}

    def route(name: str, provider: str, model: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "targets": [{"provider": provider, "model": model}], **extra}

    return {
        "providers": [
            {
                "name": "gemini",
                "type": "gemini",
                "baseUrl": fake.url,
                "apiKey": {"file": str(tmp / "gemini-key")},
                "maxRetries": 0,
            },
            v,
        ],
        "models": [
            route("gemini", "gemini", GEMINI),
            route("blocked", "gemini", "blocked"),
            route("unsafe", "gemini", "unsafe"),
            route("exhausted", "gemini", "exhausted", fallbacks=["vgemini"]),
            route("vgemini", "vertex", GEMINI),
            route("vclaude", "vertex", CLAUDE),
        ],
        "keys": [{"name": "alpha", "secret": {"env": "KEY_ALPHA"}}],
        "database": {"spillDir": str(tmp / "spill")},
    }
