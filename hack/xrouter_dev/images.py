"""`make images`: our images, built with no Docker engine and no registry, cached by content.

- a Debian bookworm base made by mmdebstrap (python3 3.11.2), imported with buildah;
- localhost/xrouter:dev and localhost/xrouter-operator:dev: `buildah bud` on Dockerfile.router /
  Dockerfile.operator with `--build-arg PYTHON_IMAGE=<the base>` (their defaults still work with
  `docker build` anywhere);
- helper images from Debian packages or our own code: PostgreSQL, Redis, a postgres client (backups),
  the fake provider (hack/xrouter_dev/fake_provider.py), and the pod sandbox's pause (hack/pause).

Each image is saved as a docker-archive under $XROUTER_IMAGE_CACHE (default ~/.cache/xrouter/images),
named by a hash of everything that goes into it: a warm run rebuilds nothing. The host's TLS proxy CA
and pip.conf are mounted into builds, never copied into an image.

    python -m xrouter_dev.images [--load STATE_DIR]   # build (or reuse) all; load into a real node
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from xrouter_dev import imageload
from xrouter_dev.imagecache import ImageError, cache_dir, manifest_path
from xrouter_dev.nodeconfig import NodeLayout

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/xrouter-base:bookworm"
ROUTER_IMAGE = "localhost/xrouter:dev"
OPERATOR_IMAGE = "localhost/xrouter-operator:dev"
FAKE_PROVIDER_IMAGE = "localhost/xrouter-fake-provider:dev"
POSTGRES_IMAGE = "localhost/xrouter-postgres:dev"
PGCLIENT_IMAGE = "localhost/xrouter-pgclient:dev"
REDIS_IMAGE = "localhost/xrouter-redis:dev"
PAUSE_IMAGE = "localhost/xrouter-pause:3.10"
CLIENT_IMAGE = "localhost/xrouter-client:dev"
OPENAI_VERSION = "3.57.0"  # the client image's openai SDK (tests use the same major as the dev venv)
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
# Host files the builds read through a mount, never copied in (the TLS proxy's CA, pip's settings).
BUILD_MOUNTS = ("/etc/ssl/certs:/etc/ssl/certs:ro", "/etc/pip.conf:/etc/pip.conf:ro")


def _buildah(*args: str) -> list[str]:
    # Our own storage, so that builds never touch (or depend on) the host's container storage.
    store = cache_dir() / "storage"
    return [
        "buildah",
        f"--root={store / 'root'}",
        f"--runroot={store / 'run'}",
        "--storage-driver=overlay",
        *args,
    ]


def _run(argv: list[str], log: Callable[[str], None], cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise ImageError(f"{' '.join(argv[:4])} ... exited {proc.returncode}:\n{tail}")
    return proc.stdout


def _hash_files(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        if "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _tree(*rel: str) -> list[Path]:
    out: list[Path] = []
    for r in rel:
        p = REPO / r
        out += [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p]
    return out


@dataclass(frozen=True)
class Image:
    name: str
    ref: str
    key: str  # hash of the recipe and every input

    @property
    def archive(self) -> Path:
        return cache_dir() / f"{self.name}-{self.key[:16]}.tar"


def _mmdebstrap(
    packages: Iterable[str], out: Path, log: Callable[[str], None], hooks: Iterable[str] = ()
) -> None:
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--include=" + ",".join(packages),
        '--aptopt=Acquire::Check-Valid-Until "false"',
        '--aptopt=Acquire::Check-Date "false"',
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        # apt's lists and caches are not part of an image
        "--customize-hook=rm -rf $1/var/lib/apt/lists/* $1/var/cache/apt/*",
        *(f"--customize-hook={h}" for h in hooks),
        SUITE,
        str(out),
    ]
    _run(argv, log)


def _rootfs_image(
    image: Image,
    packages: Iterable[str],
    config: list[str],
    files: dict[str, Path],
    log: Callable[[str], None],
    hooks: Iterable[str] = (),
) -> None:
    """An image from a Debian root filesystem (mmdebstrap) plus files and buildah config flags."""
    with tempfile.TemporaryDirectory(prefix=f"xrouter-img-{image.name}-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        _mmdebstrap(packages, rootfs, log, hooks)
        ctr = _run(_buildah("from", "scratch"), log).strip()
        try:
            _run(_buildah("add", ctr, str(rootfs), "/"), log)
            for dest, src in files.items():
                _run(_buildah("copy", "--chmod=0755", ctr, str(src), dest), log)
            if config:
                _run(_buildah("config", *config, ctr), log)
            _run(_buildah("commit", "--quiet", ctr, image.ref), log)
        finally:
            _run(_buildah("rm", ctr), log)


def _bud(image: Image, containerfile: Path, log: Callable[[str], None]) -> None:
    argv = _buildah("bud", "--quiet", "--layers", "-f", str(containerfile), "-t", image.ref)
    argv += ["--build-arg", f"OPENAI_VERSION={OPENAI_VERSION}"]
    for m in BUILD_MOUNTS:
        argv += ["-v", m]
    argv += ["--build-arg", f"PYTHON_IMAGE={BASE_IMAGE}", str(REPO)]
    _run(argv, log)


def _pause(image: Image, log: Callable[[str], None]) -> None:
    with tempfile.TemporaryDirectory(prefix="xrouter-pause-") as tmp:
        binary = Path(tmp) / "pause"
        env = os.environ | {"CGO_ENABLED": "0", "GOFLAGS": "", "GO111MODULE": "off"}
        subprocess.run(
            ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(binary), "main.go"],
            cwd=REPO / "hack" / "pause",
            env=env,
            check=True,
            capture_output=True,
        )
        ctr = _run(_buildah("from", "scratch"), log).strip()
        try:
            _run(_buildah("copy", ctr, str(binary), "/pause"), log)
            _run(_buildah("config", "--entrypoint", '["/pause"]', "--user", "65535:65535", ctr), log)
            _run(_buildah("commit", "--quiet", ctr, image.ref), log)
        finally:
            _run(_buildah("rm", ctr), log)


def _bud_with(containerfile: Path, image: Image, log: Callable[[str], None]) -> None:
    _bud(image, containerfile, log)


def _rootfs_with(
    packages: tuple[str, ...],
    config: list[str],
    files: dict[str, Path],
    hooks: tuple[str, ...],
    image: Image,
    log: Callable[[str], None],
) -> None:
    _rootfs_image(image, packages, config, files, log, hooks)


def plan() -> list[tuple[Image, Callable[[Image, Callable[[str], None]], None]]]:
    """Every image, its content key, and how to build it (in dependency order)."""
    h = hashlib.sha256
    base_key = h(f"{SUITE} {BASE_PACKAGES}".encode()).hexdigest()
    app_inputs = _hash_files(_tree("constraints.txt", "pyproject.toml", "router", "operator"))
    hack_images = REPO / "hack" / "images"
    out: list[tuple[Image, Callable[[Image, Callable[[str], None]], None]]] = []

    def key(*parts: str) -> str:
        return h("\n".join(parts).encode()).hexdigest()

    out.append(
        (
            Image("pause", PAUSE_IMAGE, key("pause", _hash_files(_tree("hack/pause")))),
            _pause,
        )
    )
    out.append(
        (
            Image("base", BASE_IMAGE, key("base", base_key)),
            lambda img, log: _rootfs_image(img, BASE_PACKAGES, [], {}, log),
        )
    )
    for name, ref, dockerfile in (
        ("router", ROUTER_IMAGE, REPO / "Dockerfile.router"),
        ("operator", OPERATOR_IMAGE, REPO / "Dockerfile.operator"),
    ):
        out.append(
            (
                Image(name, ref, key(name, base_key, app_inputs, _hash_files([dockerfile]))),
                functools.partial(_bud_with, dockerfile),
            )
        )
    fake_cf = hack_images / "fake-provider.Containerfile"
    out.append(
        (
            Image(
                "fake-provider",
                FAKE_PROVIDER_IMAGE,
                key(
                    "fake",
                    base_key,
                    app_inputs,
                    _hash_files([fake_cf, REPO / "hack/xrouter_dev/fake_provider.py"]),
                ),
            ),
            lambda img, log: _bud(img, fake_cf, log),
        )
    )
    client_cf = hack_images / "client.Containerfile"
    out.append(
        (
            Image("client", CLIENT_IMAGE, key("client", base_key, OPENAI_VERSION, _hash_files([client_cf]))),
            functools.partial(_bud_with, client_cf),
        )
    )
    pg_entry = hack_images / "postgres-entrypoint.sh"
    helpers: list[tuple[str, str, tuple[str, ...], list[str], dict[str, Path], tuple[str, ...]]] = [
        (
            "redis",
            REDIS_IMAGE,
            ("redis-server",),
            [
                "--user",
                "999:999",
                "--entrypoint",
                '["redis-server"]',
                "--cmd",
                '["--bind", "0.0.0.0", "--save", ""]',
            ],
            {},
            (),
        ),
        (
            "postgres",
            POSTGRES_IMAGE,
            ("postgresql-15",),
            [
                "--user",
                "999:999",
                "--entrypoint",
                '["/usr/local/bin/postgres-entrypoint"]',
                "--env",
                "PGDATA=/var/lib/postgresql/data/pgdata",
            ],
            {"/usr/local/bin/postgres-entrypoint": pg_entry},
            # initdb needs a passwd entry for the server's UID: the package's postgres user, as 999.
            ('chroot "$1" usermod -u 999 postgres', 'chroot "$1" groupmod -g 999 postgres'),
        ),
        ("pgclient", PGCLIENT_IMAGE, ("postgresql-client-15", "s3cmd"), ["--user", "999:999"], {}, ()),
    ]
    for name, ref, pkgs, config, files, hooks in helpers:
        inputs = _hash_files(files.values()) if files else ""
        out.append(
            (
                Image(name, ref, key(name, SUITE, str(pkgs), str(config), inputs, *hooks)),
                functools.partial(_rootfs_with, pkgs, config, files, hooks),
            )
        )
    return out


def build_all(log: Callable[[str], None] = print, only: Iterable[str] | None = None) -> dict[str, float]:
    """Build every image whose archive is not cached; returns seconds per image (0 when cached)."""
    for tool in ("buildah", "mmdebstrap", "go"):
        if shutil.which(tool) is None:
            raise ImageError(f"{tool} is missing: run `make deps` (hack/install-deps.sh)")
    cache_dir().mkdir(parents=True, exist_ok=True)
    wanted = set(only) if only else None
    timings: dict[str, float] = {}
    current: dict[str, dict[str, str]] = {}
    with contextlib.suppress(OSError, ValueError):
        current = json.loads(manifest_path().read_text())
    for image, build in plan():
        if wanted is not None and image.name not in wanted and image.name != "base":
            continue
        t0 = time.monotonic()
        if not image.archive.exists():
            log(f"images: building {image.ref}")
            build(image, log)
            tmp = image.archive.with_suffix(".partial")
            tmp.unlink(missing_ok=True)
            _run(_buildah("push", "--quiet", image.ref, f"docker-archive:{tmp}:{image.ref}"), log)
            tmp.replace(image.archive)
            old = current.get(image.name, {}).get("archive")
            if old and old != str(image.archive):
                Path(old).unlink(missing_ok=True)
        timings[image.name] = time.monotonic() - t0
        current[image.name] = {"ref": image.ref, "archive": str(image.archive)}
        manifest_path().write_text(json.dumps(current, indent=2))  # per image: a failed run keeps the rest
        size = image.archive.stat().st_size >> 20
        log(f"images: {image.ref} ready ({timings[image.name]:.1f}s; {size} MiB)")
    manifest_path().write_text(json.dumps(current, indent=2))
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xrouter_dev.images", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="build only these images (and the base)")
    parser.add_argument(
        "--load",
        action="store_true",
        help="then load them into the real node's containerd, if it runs",
    )
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    try:
        timings = build_all(only=args.only)
        print(f"images: {len(timings)} images in {time.monotonic() - t0:.1f}s; archives in {cache_dir()}")
        if args.load:
            socket = NodeLayout.default().containerd_socket
            if socket.exists():
                t1 = time.monotonic()
                imageload.load_into(socket)
                print(f"images: loaded in {time.monotonic() - t1:.1f}s")
    except ImageError as e:
        print(f"images: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
