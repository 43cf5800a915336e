"""Config hot reload: poll the mounted file (a ConfigMap update swaps a symlink, which
inotify on the file itself misses) and swap in the new runtime when it is valid.
An invalid config is refused, logged and counted; the old one keeps serving."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from .config import RouterConfig, parse_config
from .metrics import Metrics

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
        self.seen = _digest(self.path)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.check()
            except Exception:  # never let the watcher die
                self.metrics.config_reloads.labels("failure").inc()
                log.exception("config reload failed")

    def check(self) -> bool | None:
        """Reload if the file changed: True applied, False refused, None unchanged."""
        digest = _digest(self.path)
        if digest is None or digest == self.seen:
            return None
        self.seen = digest
        try:
            config = parse_config(self.path.read_text())
            self.apply(config)
        except (ValidationError, ValueError, OSError) as exc:
            self.metrics.config_reloads.labels("failure").inc()
            log.error("config reload refused, keeping the running config: %s", _short(exc))
            return False
        self.metrics.config_reloads.labels("success").inc()
        log.info("config reloaded")
        return True


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()[:5]
        )
    return str(exc)
