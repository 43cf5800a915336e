"""Importing `make images`' archives into the real node's containerd (ctr, CRI namespace k8s.io)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from xrouter_dev.imagecache import ImageError, manifest_path


def ctr(socket: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["ctr", f"--address={socket}", "--namespace=k8s.io", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    if proc.returncode != 0:
        raise ImageError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def load_into(
    socket: Path, log: Callable[[str], None] = print, only: Iterable[str] | None = None
) -> list[str]:
    """Import the current archives into the containerd at socket (the real node's). Archives this
    containerd already imported (listed beside its socket) are skipped: a warm load is instant."""
    try:
        current: dict[str, dict[str, str]] = json.loads(manifest_path().read_text())
    except (OSError, ValueError):
        return []
    done_file = socket.parent / "imported.json"
    try:
        done: list[str] = json.loads(done_file.read_text())
    except (OSError, ValueError):
        done = []
    wanted = set(only) if only is not None else None
    loaded = []
    for name, entry in current.items():
        archive = Path(entry["archive"])
        if name == "base" or not archive.exists() or (wanted is not None and name not in wanted):
            continue
        if str(archive) in done:
            continue
        t0 = time.monotonic()
        ctr(socket, "images", "import", str(archive))
        done.append(str(archive))
        done_file.write_text(json.dumps(done))
        loaded.append(f"{entry['ref']} ({time.monotonic() - t0:.1f}s)")
    if loaded:
        log(f"images: loaded into the node's containerd: {', '.join(loaded)}")
    return loaded
