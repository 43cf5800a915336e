"""Running kubectl with a clear error."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path


def run_kubectl(
    kubectl: Path,
    kubeconfig: Path,
    args: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run kubectl against kubeconfig; with check, a failure raises with kubectl's stderr in the message."""
    argv = [str(kubectl), f"--kubeconfig={kubeconfig}", *args]
    proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise KubectlError(proc.returncode, argv, proc.stdout, proc.stderr)
    return proc


class KubectlError(subprocess.CalledProcessError):
    """A failed kubectl run whose message (and so a test failure) shows kubectl's stderr."""

    def __str__(self) -> str:
        args = self.cmd[2:] if isinstance(self.cmd, list) else self.cmd
        return f"kubectl {' '.join(map(str, args))} exited {self.returncode}:\n{self.stderr or ''}".rstrip()
