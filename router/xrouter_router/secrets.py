"""Reading secrets named by the config (env var or file). Values are never logged."""

from __future__ import annotations

import os
from pathlib import Path

from .config import RouterConfig, SecretSource


class SecretError(ValueError):
    pass


def read_secret(source: SecretSource, what: str) -> str:
    """The secret's value; raises SecretError naming the source (never the value)."""
    if source.env is not None:
        value = os.environ.get(source.env)
        if not value:
            raise SecretError(f"{what}: environment variable {source.env} is not set")
        return value
    assert source.file is not None
    try:
        return Path(source.file).read_text().strip()
    except OSError as exc:
        raise SecretError(f"{what}: cannot read file {source.file}: {exc.strerror}") from None


def override(env_name: str, source: SecretSource | None, what: str) -> str | None:
    """``$env_name`` if set, else the configured secret, else None."""
    value = os.environ.get(env_name)
    if value:
        return value
    return read_secret(source, what) if source is not None else None


def secret_files(config: RouterConfig) -> list[Path]:
    """Every file the config reads a secret from (mounted Secrets), in a stable order."""
    sources: list[SecretSource | None] = [p.api_key for p in config.providers]
    sources += [p.google_credentials for p in config.providers]
    for p in config.providers:
        if p.aws is not None:
            sources += [p.aws.access_key_id, p.aws.secret_access_key, p.aws.session_token]
    sources += [k.secret for k in config.keys]
    sources += [config.admin_key, config.redis.url, config.database.url]
    if config.redis.sentinel is not None:
        sources += [config.redis.sentinel.password, config.redis.sentinel.sentinel_password]
    return sorted({Path(s.file) for s in sources if s is not None and s.file is not None})
