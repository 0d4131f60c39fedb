"""The results record: one row per numeric metric of every analysed (passed or failed) result, with
the acquisition time from the data, the variant, the sources' SHA-256s and the judgement the value
had when it was recorded. `DIR/.linac-qa/record.sqlite`, apart from the ledger: it can be deleted and
rebuilt from the outputs' `.json` (`rebuild`) without touching what was analysed."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linac_qa.history.series import Level, SeriesKey
from linac_qa.history.store import connect, to_text
from linac_qa.history.variants import unit_of
from linac_qa.intake.hashing import listed_hashes
from linac_qa.model import AnalysisResult, MetricLevel, Status

RECORD_FILE = "record.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    result_id TEXT NOT NULL,        -- the result's `.json`, relative to the directory: stable across rebuilds
    metric TEXT NOT NULL,
    machine TEXT NOT NULL,          -- the result's unit
    analysis TEXT NOT NULL,
    variant TEXT NOT NULL,
    acquired TEXT NOT NULL,         -- from the data, UTC
    value REAL NOT NULL,
    unit TEXT NOT NULL,             -- of measure: mm, %, lp/mm...
    status TEXT NOT NULL,
    report TEXT,                    -- the PDF
    sources TEXT NOT NULL,          -- JSON {file: sha256}
    -- As judged when recorded (NULL: nothing applied); in columns, so the views read them unparsed.
    judged INTEGER NOT NULL,        -- 1 when the value had a judgement
    level TEXT,                     -- ok | tolerance | action
    baseline REAL,
    tolerance_low REAL, tolerance_high REAL,
    action_low REAL, action_high REAL,
    control_low REAL, control_high REAL,
    drift TEXT,
    PRIMARY KEY (result_id, metric)
);
-- Covering what a series is read by, in order: judging a value reads its whole series since the
-- baseline (the drift chart), and reading the rows themselves would cost ten times as much.
DROP INDEX IF EXISTS points_series;
CREATE INDEX IF NOT EXISTS points_by_series
    ON points (machine, analysis, metric, variant, acquired, result_id, value);
"""
ANALYSED = (Status.PASSED, Status.FAILED)
COLUMNS = ",".join("?" * 21)


@dataclass(frozen=True)
class Row:
    key: SeriesKey
    acquired: str  # store.to_text
    value: float
    unit: str
    result_id: str
    status: str
    report: str | None
    sources: dict[str, str]
    judgement: MetricLevel | None = None

    def as_tuple(self) -> tuple[Any, ...]:
        k, j = self.key, self.judgement
        return (
            self.result_id, k.metric, k.machine, k.analysis, k.variant, self.acquired, self.value,
            self.unit, self.status, self.report, json.dumps(self.sources, sort_keys=True), *_judged(j),
        )  # fmt: skip


def _judged(j: MetricLevel | None) -> tuple[Any, ...]:
    if j is None:
        return (0, *(None,) * 9)
    pairs = (p or (None, None) for p in (j.tolerance, j.action, j.control))
    return (1, j.level.value if j.level else None, j.baseline, *(v for p in pairs for v in p), j.drift)


def _judgement(row: tuple[Any, ...]) -> MetricLevel | None:
    """The columns of `_judged` (without the value) back into a MetricLevel."""
    judged, level, baseline, tl, th, al, ah, cl, ch, drift, value = row
    if not judged:
        return None
    return MetricLevel(
        level=Level(level) if level else None,
        value=value,
        baseline=baseline,
        tolerance=_pair(tl, th),
        action=_pair(al, ah),
        control=_pair(cl, ch),
        drift=drift,
    )


def _pair(low: float | None, high: float | None) -> tuple[float | None, float | None] | None:
    """A window stored as two columns; None when neither side has a limit (as MetricLevel keeps it)."""
    return None if low is None and high is None else (low, high)


def result_id(result: AnalysisResult) -> str:
    """Its `.json` output, else (no outputs) the analysis and first file."""
    document = next((o for o in result.outputs if o.endswith(".json")), None)
    return document or f"{result.analysis}:{result.files[0] if result.files else ''}"


def rows_of(result: AnalysisResult, sources: dict[str, str]) -> list[Row]:
    """The record's rows for a result: only analysed results with an acquisition time (never the
    analysis time), and only numeric metrics (not flags or names). A result whose machine nothing
    names (no unit configured, none in the data) is kept under the machine "" rather than lost."""
    if result.status not in ANALYSED or result.acquired is None or not result.analysis:
        return []
    acquired = to_text(result.acquired)
    rid = result_id(result)
    sources = listed_hashes(sources)
    report = next((o for o in result.outputs if o.endswith(".pdf")), None)
    rows = []
    for metric, value in result.metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        key = SeriesKey(result.unit or "", result.analysis, metric, result.variant or "")
        rows.append(
            Row(key, acquired, float(value), unit_of(metric), rid, result.status.value, report,
                sources, result.levels.get(metric))
        )  # fmt: skip
    return rows


class Record:
    def __init__(self, directory: Path):
        self.directory = directory
        self.conn = connect(directory, RECORD_FILE, SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def add(self, rows: Iterable[Row]) -> int:
        """Rows replace those of the same result and metric (a result analysed again with --force)."""
        values = [r.as_tuple() for r in rows]
        with self._transaction():
            self.conn.executemany(f"INSERT OR REPLACE INTO points VALUES ({COLUMNS})", values)
        return len(values)

    def replace_all(self, rows: Iterable[Row]) -> int:
        with self._transaction():
            self.conn.execute("DELETE FROM points")
            values = [r.as_tuple() for r in rows]
            self.conn.executemany(f"INSERT OR REPLACE INTO points VALUES ({COLUMNS})", values)
        return len(values)

    def points(
        self,
        key: SeriesKey,
        *,
        after: str | None = None,
        until: str | None = None,
        first: int | None = None,
        last: int | None = None,
    ) -> list[tuple[str, float]]:
        """(acquired, value) of the series in acquisition order: after one store time (exclusive),
        until another (inclusive), only the `first` or `last` n."""
        sql = "SELECT acquired, value FROM points WHERE machine=? AND analysis=? AND metric=? AND variant=?"
        args: list[Any] = [key.machine, key.analysis, key.metric, key.variant]
        if after is not None:
            sql, args = sql + " AND acquired > ?", [*args, after]
        if until is not None:
            sql, args = sql + " AND acquired <= ?", [*args, until]
        if last is None:
            limit = f" LIMIT {int(first)}" if first is not None else ""
            return list(self.conn.execute(sql + " ORDER BY acquired, result_id" + limit, args))
        newest = self.conn.execute(sql + " ORDER BY acquired DESC, result_id DESC LIMIT ?", [*args, last])
        return list(reversed(list(newest)))

    def first(self, key: SeriesKey, n: int) -> list[tuple[str, float]]:
        """The first n (acquired, value) of the series."""
        return self.points(key, first=n)

    def last(self, key: SeriesKey, n: int) -> list[tuple[str, float]]:
        """The last n (acquired, value), oldest first."""
        return self.points(key, last=n)

    def series_rows(self, machine: str | None = None) -> list[tuple[Any, ...]]:
        """What the views draw, unparsed (36,000 rows are read in a fraction of a second): (machine,
        analysis, metric, variant, unit, acquired, value, result_id, report, level, baseline, and the
        low and high of tolerance, action and control, drift)."""
        sql = (
            "SELECT machine, analysis, metric, variant, unit, acquired, value, result_id, report, level,"
            " baseline, tolerance_low, tolerance_high, action_low, action_high, control_low, control_high,"
            " drift"
            " FROM points" + (" WHERE machine = ?" if machine is not None else "")
        )
        sql += " ORDER BY machine, analysis, metric, variant, acquired, result_id"
        return list(self.conn.execute(sql, (machine,) if machine is not None else ()))

    def rows(self, machine: str | None = None) -> list[Row]:
        """Every row (of one machine), by series and acquisition time."""
        sql = "SELECT * FROM points" + (" WHERE machine = ?" if machine is not None else "")
        sql += " ORDER BY machine, analysis, metric, variant, acquired, result_id"
        return [_row(r) for r in self.conn.execute(sql, (machine,) if machine is not None else ())]

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")


def _row(r: sqlite3.Row | tuple[Any, ...]) -> Row:
    rid, metric, machine, analysis, variant, acquired, value, unit, status, report, sources = r[:11]
    return Row(
        SeriesKey(machine, analysis, metric, variant), acquired, value, unit, rid, status, report,
        json.loads(sources), _judgement((*r[11:], value)),
    )  # fmt: skip
