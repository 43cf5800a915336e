"""Where `make images` keeps its archives, and the record of the current ones: what both the
builder (images) and the loader (imageload) need, in a module that imports neither."""

from __future__ import annotations

import os
from pathlib import Path


class ImageError(RuntimeError):
    """An image could not be built or loaded."""


def cache_dir() -> Path:
    env = os.environ.get("XROUTER_IMAGE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "xrouter" / "images"


def manifest_path() -> Path:
    """current.json: image name -> {ref, archive} of the archives the last build made."""
    return cache_dir() / "current.json"
