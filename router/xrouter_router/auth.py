"""API keys: looked up by their SHA-256, so raw keys are never stored or compared
directly; the final check is constant-time."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from .config import Limits


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key the router accepts. ``name`` identifies it in limits and usage rows."""

    name: str
    sha256: str
    limits: Limits

    def may_use(self, model: str) -> bool:
        allowed = self.limits.allowed_models
        return allowed is None or model in allowed


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The presented key, from ``Authorization: Bearer`` (or ``x-api-key``/``api-key``)."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip().decode("latin-1")
        elif name in (b"x-api-key", b"api-key") and value:
            return value.decode("latin-1")
    return None


class KeyStore:
    """Keys from the config plus keys from the database (refreshed in the background)."""

    def __init__(self, config_keys: dict[str, KeyInfo]) -> None:
        self.config_keys = config_keys
        self.db_keys: dict[str, KeyInfo] = {}

    def lookup(self, raw: str) -> KeyInfo | None:
        digest = hash_key(raw)
        info = self.config_keys.get(digest) or self.db_keys.get(digest)
        if info is None or not hmac.compare_digest(info.sha256, digest):
            return None
        return info

    def names(self) -> set[str]:
        return {k.name for k in self.config_keys.values()}
