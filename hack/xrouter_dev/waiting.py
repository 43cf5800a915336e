"""Waiting for a condition, for the launcher and every test: one ``eventually``."""

from __future__ import annotations

import subprocess
import time
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
