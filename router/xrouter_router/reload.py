"""Config hot reload: poll the mounted file (a ConfigMap update swaps a symlink, which
inotify on the file itself misses) and swap in the new runtime when it is valid.
An invalid config is refused, logged and counted; the old one keeps serving.

The secret files the config names (``{file: ...}``: provider keys, client keys, the
admin key, the Redis and PostgreSQL URLs) are watched the same way, by content: the
kubelet updates a mounted Secret by swapping the directory's ``..data`` symlink, so
each poll reads through the path again. A changed secret rebuilds the runtime like a
changed config does (``apply``), which rotates provider and client keys in place."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from .config import RouterConfig, parse_config
from .metrics import Metrics
from .secrets import secret_files

log = logging.getLogger("xrouter.reload")


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class Reloader:
    def __init__(
        self, path: str, apply: Callable[[RouterConfig], None], metrics: Metrics, interval: float = 1.0
    ) -> None:
        self.path = Path(path)
        self.apply = apply
        self.metrics = metrics
        self.interval = interval
        self.files = _files_of(self.path)
        self.seen = self._fingerprint()

    def _fingerprint(self) -> str | None:
        """The config's content and every watched secret's content (missing counts)."""
        config = _digest(self.path)
        if config is None:
            return None
        h = hashlib.sha256(config.encode())
        for f in self.files:
            h.update(b"\0" + str(f).encode() + b"\0" + (_digest(f) or "missing").encode())
        return h.hexdigest()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.check()
            except Exception:  # never let the watcher die
                self.metrics.config_reloads.labels("failure").inc()
                log.exception("config reload failed")

    def check(self) -> bool | None:
        """Reload if the file or a secret changed: True applied, False refused, None
        unchanged."""
        digest = self._fingerprint()
        if digest is None or digest == self.seen:
            return None
        self.seen = digest
        try:
            config = parse_config(self.path.read_text())
            # Watch what the new config names; fingerprint before ``apply`` reads the
            # secrets, so a change in between causes one more reload, never a missed one.
            self.files = secret_files(config)
            self.seen = self._fingerprint()
            self.apply(config)
        except (ValidationError, ValueError, OSError) as exc:
            self.metrics.config_reloads.labels("failure").inc()
            log.error("config reload refused, keeping the running config: %s", _short(exc))
            return False
        self.metrics.config_reloads.labels("success").inc()
        log.info("config reloaded")
        return True


def _files_of(path: Path) -> list[Path]:
    try:
        return secret_files(parse_config(path.read_text()))
    except (ValidationError, ValueError, OSError):
        return []  # the config itself is watched; its secrets once it parses


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()[:5]
        )
    return str(exc)
