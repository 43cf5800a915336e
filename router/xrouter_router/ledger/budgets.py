"""Budget periods (``limits.budgetPeriod``): calendar windows in UTC that a key's
``budgetUsd`` applies to. ``daily`` starts at 00:00 UTC, ``weekly`` on Monday 00:00
UTC (ISO weeks), ``monthly`` on the 1st at 00:00 UTC; ``none`` never resets.

Spend is kept per *account*: the key name for a lifetime budget, or the key name and
the period's start (``alpha@2026-12-01``) for a windowed one. A usage row belongs to
the account of the moment it was made, so spend from before a boundary never counts
after it, whenever the row reaches the database."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

NONE = "none"
PERIODS = (NONE, "daily", "weekly", "monthly")


@dataclass(frozen=True, slots=True)
class Window:
    """One period: ``start`` inclusive, ``end`` exclusive, as unix times."""

    label: str
    start: float
    end: float


def window(period: str, when: float) -> Window:
    """The ``period`` window (not ``none``) holding the unix time ``when``."""
    t = dt.datetime.fromtimestamp(when, dt.UTC)
    day = dt.datetime(t.year, t.month, t.day, tzinfo=dt.UTC)
    if period == "daily":
        start, end = day, day + dt.timedelta(days=1)
    elif period == "weekly":
        start = day - dt.timedelta(days=day.weekday())
        end = start + dt.timedelta(days=7)
    elif period == "monthly":
        start = day.replace(day=1)
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
    else:
        raise ValueError(f"budgetPeriod: unknown period {period!r}")
    return Window(start.date().isoformat(), start.timestamp(), end.timestamp())


class Periods:
    """Accounts for rows and lookups. Remembers the current window of each period, so
    the lookup on every request is a comparison, not a calendar computation."""

    def __init__(self) -> None:
        self._current: dict[str, Window] = {}

    def window(self, period: str, when: float) -> Window:
        w = self._current.get(period)
        if w is not None and w.start <= when < w.end:
            return w
        w = window(period, when)
        if w.end > (self._current[period].end if period in self._current else 0):
            self._current[period] = w
        return w

    def since(self, period: str, now: float) -> dt.datetime | None:
        """When the current ``period`` began; None for ``none`` (the whole lifetime)."""
        if period == NONE:
            return None
        return dt.datetime.fromtimestamp(self.window(period, now).start, dt.UTC)

    def account(self, key_name: str, period: str | None, when: float) -> str:
        if period is None or period == NONE:
            return key_name
        return f"{key_name}@{self.window(period, when).label}"
