"""Spill files on local disk: a torn or damaged line is quarantined, counted and
logged, and every other row is replayed; a crash mid-append costs at most that line."""

from __future__ import annotations

import logging
import time
from dataclasses import astuple
from pathlib import Path

import orjson
import pytest
from xrouter_router.ledger.spill import DiskSpill
from xrouter_router.ledger.usage import UsageRecorder, UsageRow
from xrouter_router.metrics import Metrics

from .servers import Postgres


def _rows(n: int, prefix: str) -> list[UsageRow]:
    return [
        UsageRow(f"{prefix}{i}", "k", "m", "p", "u", 1, 2, 0, 0.5, 200, 1.0, time.time()) for i in range(n)
    ]


def _lines(rows: list[UsageRow]) -> bytes:
    return b"".join(orjson.dumps(astuple(r)) + b"\n" for r in rows)


def _bad_lines(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("xrouter_usage_spill_bad_lines_total") or 0.0


async def test_bad_lines_are_quarantined_and_the_rest_replayed(
    tmp_path: Path, database: tuple[Postgres, str], caplog: pytest.LogCaptureFixture
) -> None:
    pg, name = database
    spill = tmp_path / "spill"
    spill.mkdir()
    torn = b'["a-torn", "k", "m", "p"'
    wrong = b'{"not": "a row"}'
    # A claimed file of a dead process sorts first: it used to stop every later round.
    first = spill / "replay-999999-0000-usage-1.jsonl"
    first.write_bytes(_lines(_rows(3, "a")) + torn + b"\n" + wrong + b"\n" + _lines(_rows(2, "b")) + torn)
    (spill / "usage-2.jsonl").write_bytes(_lines(_rows(4, "c")))
    metrics = Metrics()
    rec = UsageRecorder(pg.dsn(name), metrics, str(spill))
    with caplog.at_level(logging.WARNING, "xrouter.usage"):
        await rec.flush()
    await rec.aclose()
    assert pg.sql("SELECT count(*), count(DISTINCT request_id) FROM xrouter_usage", name) == "9|9"
    assert not list(spill.glob("*.jsonl"))  # nothing left to block the next round
    assert (spill / "quarantine.txt").read_bytes() == torn + b"\n" + wrong + b"\n" + torn + b"\n"
    assert _bad_lines(metrics) == 3
    assert "skipped 3 unreadable spilled usage entries" in caplog.text
    assert "a-torn" not in caplog.text
    assert rec.spill_rows == 0


async def test_a_crash_mid_append_costs_at_most_the_torn_line(
    tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    spill = tmp_path / "spill"
    whole = _lines(_rows(5, "w"))
    last_start = whole.rindex(b"\n", 0, len(whole) - 1) + 1
    # Every place a crash can cut the last line of an append.
    for cut in range(last_start + 1, len(whole) - 1, 7):
        (spill / f"c{cut}").mkdir(parents=True)
        (spill / f"c{cut}" / "usage-1.jsonl").write_bytes(whole[:cut])
        rec = UsageRecorder(pg.dsn(name), Metrics(), str(spill / f"c{cut}"))
        await rec.flush()
        await rec.aclose()
        assert pg.sql("SELECT count(*) FROM xrouter_usage", name) == "4", cut
        assert not list((spill / f"c{cut}").glob("*.jsonl"))
        pg.sql("DELETE FROM xrouter_usage", name)


def test_append_after_a_torn_tail_starts_a_new_line(tmp_path: Path) -> None:
    metrics = Metrics()
    disk = DiskSpill(str(tmp_path), metrics)
    # A file left torn by a crash, appended to again (a restarted container can have
    # the same pid): the new rows must not be glued to the torn fragment.
    disk.path.write_bytes(_lines(_rows(2, "old"))[:-9])
    disk.append(_rows(3, "new"))
    rows, bad = disk.read(disk.path)
    assert [r.request_id for r in rows] == ["old0", "new0", "new1", "new2"]
    assert len(bad) == 1
    assert disk.count() == 5  # lines waiting for replay, the torn one included
    # Two recorders never share a file, whatever their pids.
    assert DiskSpill(str(tmp_path), metrics).path != disk.path
