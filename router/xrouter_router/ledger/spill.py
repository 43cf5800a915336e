"""Usage rows that could not be written to PostgreSQL, kept on local disk (the last
resort, after the Redis stream in ``spillstream.py``).

Each recorder appends to a file of its own (``usage-<pid>-<random>.jsonl``), one
JSON array per line, fsynced. A crash mid-append leaves at most one torn line at
the end of that file; nobody appends to it again, and an append to a file that
does not end in a newline starts with one, so a torn line can never swallow the
next row. On replay a line that does not parse as a usage row is copied to
``quarantine.txt`` beside the files, counted and logged, and the rest is replayed
(a file whose rows cannot all be written stays, and is read again whole).
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import astuple
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry, Counter

from ..metrics import Metrics
from .usagerow import UsageRow, parse_row

log = logging.getLogger("xrouter.usage")

QUARANTINE = "quarantine.txt"
_bad_lines: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()


def bad_lines_counter(metrics: Metrics) -> Counter:
    """``xrouter_usage_spill_bad_lines_total``, once per registry (several recorders
    may share one Metrics in tests)."""
    counter = _bad_lines.get(metrics.registry)
    if counter is None:
        counter = _bad_lines[metrics.registry] = Counter(
            "xrouter_usage_spill_bad_lines",
            "Spilled usage entries that could not be read back and were quarantined",
            registry=metrics.registry,
        )
    return counter


def encode(row: UsageRow) -> bytes:
    return orjson.dumps(astuple(row))


class DiskSpill:
    def __init__(self, path: str, metrics: Metrics) -> None:
        self.dir = _writable(path)
        self.bad_lines = bad_lines_counter(metrics)
        self.path = self.dir / f"usage-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"

    def count(self) -> int:
        return sum(f.read_bytes().count(b"\n") for f in self.dir.glob("*.jsonl"))

    def append(self, batch: Sequence[UsageRow]) -> None:
        data = b"".join(encode(r) + b"\n" for r in batch)
        with open(self.path, "ab") as f:
            if f.tell() > 0 and not _ends_with_newline(self.path):
                data = b"\n" + data
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def claim(self) -> Iterator[Path]:
        """Spill files to replay, each renamed to ``replay-<pid>-…`` first: another worker
        may be replaying it. Files claimed by a process that died are taken over."""
        mine = f"replay-{os.getpid()}-"
        for path in sorted(self.dir.glob("*.jsonl")):
            if path.name.startswith(mine):
                yield path
                continue
            if path.name.startswith("replay-") and _alive(path.name.split("-")[1]):
                continue
            claimed = path.with_name(f"{mine}{uuid.uuid4().hex[:8]}-{path.name}")
            try:
                path.rename(claimed)
            except FileNotFoundError:
                continue
            yield claimed

    def read(self, path: Path) -> tuple[list[UsageRow], list[bytes]]:
        """The file's rows, and the lines that are not rows (torn by a crash, or
        damaged): the caller quarantines those once the rows are written."""
        rows: list[UsageRow] = []
        bad: list[bytes] = []
        for line in path.read_bytes().split(b"\n"):
            if not line.strip():
                continue
            row = parse_row(line)
            if row is None:
                bad.append(line)
            else:
                rows.append(row)
        return rows, bad

    def quarantine(self, lines: Sequence[bytes], origin: str) -> None:
        with open(self.dir / QUARANTINE, "ab") as f:
            f.write(b"".join(line + b"\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
        self.bad_lines.inc(len(lines))
        # The count and the origin only: a torn line is not worth echoing into the logs.
        log.warning(
            "skipped %d unreadable spilled usage entries from %s; kept in %s",
            len(lines),
            origin,
            self.dir / QUARANTINE,
        )


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _writable(path: str) -> Path:
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return p
    except OSError:
        fallback = Path(tempfile.gettempdir()) / "xrouter-spill"
        fallback.mkdir(parents=True, exist_ok=True)
        log.warning("spill dir %s is not writable, using %s", path, fallback)
        return fallback


def _alive(pid: str) -> bool:
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
