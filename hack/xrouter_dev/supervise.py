"""Process supervision for the launcher: each component in its own process group, killed with the
launcher (PR_SET_PDEATHSIG), its output in one log file."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGKILL if the launcher dies, so nothing is orphaned even on kill -9."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Component:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@dataclass
class _Timer:
    start: float = field(default_factory=time.monotonic)

    def __call__(self) -> float:
        return time.monotonic() - self.start


def signal_group(pid: int, sig: int) -> None:
    _signal_group(pid, sig)


def spawn(
    name: str, argv: Sequence[str], logs: Path, cwd: Path, env: dict[str, str] | None = None
) -> Component:
    """Start argv in its own session with stdout+stderr appended to logs/<name>.log."""
    log_path = logs / f"{name}.log"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            # PR_SET_PDEATHSIG fires when the *thread* that forked exits, so only from the main thread.
            preexec_fn=_set_pdeathsig
            if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()
            else None,
        )
    return Component(name, proc, log_path)


def stop_components(components: Sequence[Component], grace: float = 10) -> None:
    """SIGTERM every process group, wait up to grace seconds in all, then SIGKILL what is left."""
    for comp in components:
        if comp.alive():
            _signal_group(comp.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for comp in components:
        try:
            comp.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(comp.proc.pid, signal.SIGKILL)
            comp.proc.wait()
        # Anything left in the group (the components fork nothing, but be thorough).
        _signal_group(comp.proc.pid, signal.SIGKILL)
