"""`make up` stops what it started on Ctrl-C, however it was started."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from xrouter_dev import up


@pytest.fixture
def sigint_ignored() -> Iterator[None]:
    # As a script's background job (`cmd &` without job control) inherits it: Python then
    # installs no KeyboardInterrupt handler of its own.
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_unwinds_even_when_sigint_was_inherited_ignored(
    sigint_ignored: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unwound = []

    def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
        stack.callback(unwound.append, "stopped")
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does
        time.sleep(5)
        return 1

    monkeypatch.setattr(up, "run", run)
    assert up.main(["--dir", str(tmp_path)]) == 0
    assert unwound == ["stopped"]
