"""The per-key limits in this process only: used without Redis, and while Redis is
down in ``failMode: open``. Same fixed calendar-minute windows, on the local clock."""

from __future__ import annotations

import time
from collections.abc import Callable

from .auth import KeyInfo


class LocalLimiter:
    """The same limits, in this process only."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._minute = -1
        self._requests: dict[str, int] = {}
        self._tokens: dict[str, int] = {}
        self.concurrent: dict[str, int] = {}

    def _roll(self) -> int:
        now = self._clock()
        minute = int(now // 60)
        if minute != self._minute:
            self._minute = minute
            self._requests.clear()
            self._tokens.clear()
        return 60 - int(now % 60)

    def acquire(self, key: KeyInfo) -> tuple[str | None, float]:
        retry = self._roll()
        lim, name = key.limits, key.name
        if lim.tpm is not None and self._tokens.get(name, 0) >= lim.tpm:
            return "tpm", retry
        if lim.rpm is not None and self._requests.get(name, 0) >= lim.rpm:
            return "rpm", retry
        if lim.max_concurrent is not None and self.concurrent.get(name, 0) >= lim.max_concurrent:
            return "concurrency", 1
        self._requests[name] = self._requests.get(name, 0) + 1
        if lim.max_concurrent is not None:
            self.concurrent[name] = self.concurrent.get(name, 0) + 1
        return None, 0

    def settle(self, key: KeyInfo, tokens: int, concurrency: bool) -> None:
        self._roll()
        if tokens:
            self._tokens[key.name] = self._tokens.get(key.name, 0) + tokens
        if concurrency:
            self.concurrent[key.name] = max(0, self.concurrent.get(key.name, 0) - 1)
