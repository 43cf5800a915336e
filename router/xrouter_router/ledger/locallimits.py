"""The per-key limits in this process only: used without Redis, and while Redis is
down in ``failMode: open``. Same fixed calendar-minute windows, on the local clock."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..auth import KeyInfo


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

    @property
    def minute(self) -> int:
        return self._minute

    def acquire(self, key: KeyInfo, want: int = 0) -> tuple[str | None, float]:
        """Admit (reserving ``want`` TPM tokens) or name the limit that refuses."""
        retry = self._roll()
        lim, name = key.limits, key.name
        if lim.tpm is not None and self._tokens.get(name, 0) >= lim.tpm:
            return "tpm", retry
        if lim.rpm is not None and self._requests.get(name, 0) >= lim.rpm:
            return "rpm", retry
        if lim.max_concurrent is not None and self.concurrent.get(name, 0) >= lim.max_concurrent:
            return "concurrency", 1
        self._requests[name] = self._requests.get(name, 0) + 1
        if want and lim.tpm is not None:
            self._tokens[name] = self._tokens.get(name, 0) + want
        if lim.max_concurrent is not None:
            self.concurrent[name] = self.concurrent.get(name, 0) + 1
        return None, 0

    def settle(self, key: KeyInfo, tokens: int, concurrency: bool, held: int = 0, minute: int = -1) -> None:
        self._roll()
        if held and minute == self._minute:  # the reservation is still in this window
            tokens -= held
        if tokens:
            self._tokens[key.name] = max(0, self._tokens.get(key.name, 0) + tokens)
        if concurrency:
            self.concurrent[key.name] = max(0, self.concurrent.get(key.name, 0) - 1)
