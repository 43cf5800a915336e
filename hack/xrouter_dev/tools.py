"""Where the tools built by hack/build-tools.sh live, and the pins the launcher relies on."""

from __future__ import annotations

import os
import socket
from pathlib import Path

DEFAULT_TOOLS_DIR = Path.home() / ".cache" / "xrouter" / "tools"
# Must match the pins in hack/build-tools.sh.
K8S_VERSION = "v1.33.13"


def tools_dir() -> Path:
    """Where hack/build-tools.sh puts its output ($XROUTER_TOOLS_DIR, default ~/.cache/xrouter/tools)."""
    env = os.environ.get("XROUTER_TOOLS_DIR")
    return Path(env) if env else DEFAULT_TOOLS_DIR


def tools_bin(name: str, tools: Path | None = None) -> Path:
    """Path of a built tool, e.g. tools_bin("helm"); raises FileNotFoundError if it is not built."""
    path = (tools or tools_dir()) / "bin" / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise FileNotFoundError(f"{name} is not built at {path}: run `make tools` (bash hack/build-tools.sh)")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
