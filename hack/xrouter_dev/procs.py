"""Stopping a child process: ask, wait, then insist. Shared by `make up`, the benchmark and
the tests, which all start servers they must not leave behind."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any


def stop(
    proc: subprocess.Popen[Any] | None,
    *,
    sig: int = signal.SIGTERM,
    timeout: float = 15,
    group: bool = False,
) -> int | None:
    """Send ``sig`` (to the process group with ``group``: the process must have been started
    with ``start_new_session=True``), wait up to ``timeout`` seconds, then SIGKILL.
    Returns the exit code; a process that already exited is left alone."""
    if proc is None:
        return None
    if proc.poll() is not None:
        return proc.returncode

    def send(s: int) -> None:
        try:
            if group:
                os.killpg(proc.pid, s)
            else:
                proc.send_signal(s)
        except ProcessLookupError:
            pass

    send(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        return proc.wait()
