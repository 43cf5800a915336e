"""A circuit breaker per upstream target.

Closed: requests flow; failures inside ``window`` are counted. ``threshold`` of them
open the breaker. Open: requests skip the target until ``cooldown`` has passed, then
exactly one probe is let through (half-open). The probe's success closes the
breaker; its failure opens it again for another cooldown.

Every admitted request holds a ``Ticket`` and reports its outcome with it. A ticket
belongs to one *epoch* (the breaker's life between two state changes), so the
verdict of a request that started before the breaker opened (a late success or
failure) cannot close or re-open it, and only the probe's own ticket can end the
half-open state.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

CLOSED, HALF_OPEN, OPEN = 0, 1, 2


class Ticket:
    """Handed out by ``Breaker.admit``; pass it back with the request's outcome."""

    __slots__ = ("epoch", "probe")

    def __init__(self, epoch: int, probe: bool) -> None:
        self.epoch = epoch
        self.probe = probe


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
        self._epoch = 0
        self._probe: Ticket | None = None
        self._closed_ticket = Ticket(0, False)  # shared by every request of a closed epoch

    @property
    def state(self) -> int:
        if self._state == OPEN and self._clock() - self._opened_at >= self.cooldown:
            return HALF_OPEN
        return self._state

    def admit(self) -> Ticket | None:
        """A ticket if a request may go to this target now, else None. In half-open,
        the one probe gets a ticket; everyone else waits for its verdict."""
        if self._state == CLOSED:
            return self._closed_ticket
        if self._probe is None and self.state == HALF_OPEN:
            self._probe = Ticket(self._epoch, True)
            self._set(HALF_OPEN)
            return self._probe
        return None

    def success(self, ticket: Ticket) -> None:
        if ticket is self._probe:
            self._probe = None
            self._failures.clear()
            self._new_epoch(CLOSED)

    def failure(self, ticket: Ticket) -> None:
        now = self._clock()
        if ticket is self._probe:
            self._probe = None
            self._opened_at = now
            self._new_epoch(OPEN)
            return
        if self._state != CLOSED or ticket.epoch != self._epoch:
            return  # started before the breaker last changed: its verdict is stale
        failures = self._failures
        failures.append(now)
        while failures and now - failures[0] > self.window:
            failures.popleft()
        if len(failures) >= self.threshold:
            failures.clear()
            self._opened_at = now
            self._new_epoch(OPEN)

    def release(self, ticket: Ticket) -> None:
        """The request ended without a verdict on the target (the client went away,
        the upstream refused the request itself); a probe's slot is freed."""
        if ticket is self._probe:
            self._probe = None
            if self._state == HALF_OPEN:
                self._set(OPEN)  # its cooldown has passed: the next admit probes

    def _new_epoch(self, state: int) -> None:
        self._epoch += 1
        self._closed_ticket = Ticket(self._epoch, False)
        self._set(state)

    def _set(self, state: int) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(state)
