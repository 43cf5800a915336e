"""A circuit breaker per upstream target.

Closed: requests flow; failures inside ``window`` are counted. ``threshold`` of them
open the breaker. Open: requests skip the target until ``cooldown`` has passed, then
one probe is let through (half-open). The probe's success closes the breaker; its
failure opens it again for another cooldown.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

CLOSED, HALF_OPEN, OPEN = 0, 1, 2


class Breaker:
    def __init__(
        self,
        threshold: int,
        window: float,
        cooldown: float,
        on_change: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.window = window
        self.cooldown = cooldown
        self._on_change = on_change
        self._clock = clock
        self._failures: deque[float] = deque()
        self._state = CLOSED
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> int:
        if self._state == OPEN and self._clock() - self._opened_at >= self.cooldown:
            return HALF_OPEN
        return self._state

    def allow(self) -> bool:
        """May a request go to this target now? In half-open, only one probe at a time."""
        state = self.state
        if state == CLOSED:
            return True
        if state == HALF_OPEN and not self._probing:
            self._probing = True
            self._set(HALF_OPEN)
            return True
        return False

    def success(self) -> None:
        self._probing = False
        if self._state != CLOSED:
            self._failures.clear()
            self._set(CLOSED)

    def failure(self) -> None:
        now = self._clock()
        if self._probing or self._state != CLOSED:
            self._probing = False
            self._opened_at = now
            self._set(OPEN)
            return
        failures = self._failures
        failures.append(now)
        while failures and now - failures[0] > self.window:
            failures.popleft()
        if len(failures) >= self.threshold:
            failures.clear()
            self._opened_at = now
            self._set(OPEN)

    def release_probe(self) -> None:
        """The probe ended without a verdict (e.g. the client went away)."""
        self._probing = False

    def _set(self, state: int) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(state)
