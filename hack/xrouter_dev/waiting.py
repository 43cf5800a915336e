"""Waiting for a condition, for the launcher and every test: one ``eventually``, and one wait for a
Service path to answer (``until_answers``)."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# What a probe of a system that is still coming up may raise meanwhile (kubectl failing, a key or
# item not there yet, a half-written JSON); anything else is a bug in the probe and propagates.
TRANSIENT: tuple[type[BaseException], ...] = (
    subprocess.SubprocessError,
    OSError,
    KeyError,
    IndexError,
    ValueError,
)


def eventually(what: str, probe: Callable[[], T], timeout: float = 60, every: float = 0.25) -> T:
    """Call ``probe`` until it returns something truthy and return that. After ``timeout``
    seconds, AssertionError naming ``what`` (and the last transient error, if any)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = probe()
        except TRANSIENT as exc:
            last = exc
        else:
            if value:
                return value
        if time.monotonic() > deadline:
            cause = f" (last error: {type(last).__name__}: {last})" if last is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{cause}")
        time.sleep(every)


def seconds_until(what: str, probe: Callable[[], object], timeout: float = 60, every: float = 0.25) -> float:
    """``eventually``, returning how many seconds the condition took (for figures)."""
    t0 = time.monotonic()
    eventually(what, probe, timeout, every)
    return time.monotonic() - t0


def answers(url: str, timeout: float = 3) -> bool:
    """True when something answers an HTTP GET of ``url``, with any status (a 404 still proves the
    path reaches a server). A refused, reset or timed-out connection raises OSError (transient)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True


def until_answers(what: str, url: str, timeout: float = 60, in_a_row: int = 5) -> float:
    """Wait until ``url`` answers ``in_a_row`` times in a row; returns the seconds it took.

    Before a test's first request through a new Service: pods Ready (and an XRouter Ready) do not
    mean kube-proxy has programmed the Service's endpoints yet, and until it has, a connection to
    the ClusterIP is refused. Several answers in a row, because each connection picks an endpoint
    at random and the endpoints may not all be reachable at the same moment."""
    streak = 0

    def answered_enough() -> bool:
        nonlocal streak
        try:
            answers(url)
        except OSError:
            streak = 0
            raise
        streak += 1
        return streak >= in_a_row

    return seconds_until(f"{what} to answer at {url}", answered_enough, timeout, every=0.2)
