"""Baselines per machine x analysis x metric x variant: versioned and append-only (value, effective
from, set by, reason). A value is judged against the baseline in force at its acquisition time, so a
new baseline never changes how an earlier result was judged. `DIR/.linac-qa/baselines.sqlite`: a
physicist's decisions, kept apart from the record, which can be deleted and rebuilt."""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass
from pathlib import Path

from linac_qa.history.record import Record
from linac_qa.history.series import BaselineChange, SeriesKey
from linac_qa.history.store import connect, from_text, to_text

BASELINES_FILE = "baselines.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS baselines (
    id INTEGER PRIMARY KEY,         -- setting order: of two with one effective time, the later wins
    machine TEXT NOT NULL,
    analysis TEXT NOT NULL,
    metric TEXT NOT NULL,
    variant TEXT NOT NULL,
    value REAL NOT NULL,
    effective_from TEXT NOT NULL,   -- acquisition time (UTC) from which it judges
    set_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    set_at TEXT NOT NULL,
    window_from TEXT,               -- the acquisition times of the results it is the mean of, if any:
    window_to TEXT                  -- the drift chart's baseline window
);
CREATE INDEX IF NOT EXISTS baselines_key ON baselines (machine, analysis, metric, variant, effective_from);
"""
AUTO = "auto-baseline"


@dataclass(frozen=True)
class Baseline:
    key: SeriesKey
    value: float
    effective_from: str  # store.to_text
    set_by: str
    reason: str
    set_at: str
    window: tuple[str, str] | None = None

    def change(self) -> BaselineChange:
        return BaselineChange(from_text(self.effective_from), self.value, self.set_by, self.reason)


class Baselines:
    def __init__(self, directory: Path):
        self.conn = connect(directory, BASELINES_FILE, SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def set(self, b: Baseline) -> Baseline:
        k = b.key
        window = b.window or (None, None)
        self.conn.execute(
            "INSERT INTO baselines (machine, analysis, metric, variant, value, effective_from, set_by,"
            " reason, set_at, window_from, window_to) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (k.machine, k.analysis, k.metric, k.variant, b.value, b.effective_from, b.set_by, b.reason,
             b.set_at, *window),
        )  # fmt: skip
        return b

    def in_force(self, key: SeriesKey, at: str) -> Baseline | None:
        """The baseline that judges a value acquired at `at`."""
        found = self._select(
            "machine=? AND analysis=? AND metric=? AND variant=? AND effective_from <= ?"
            " ORDER BY effective_from DESC, id DESC LIMIT 1",
            (key.machine, key.analysis, key.metric, key.variant, at),
        )
        return found[0] if found else None

    def history(self, machine: str | None = None) -> list[Baseline]:
        """Every baseline ever set (of one machine), by series then in the order they take effect."""
        where = "machine = ?" if machine is not None else "1"
        return self._select(
            f"{where} ORDER BY machine, analysis, metric, variant, effective_from, id",
            (machine,) if machine is not None else (),
        )

    def has_any(self, key: SeriesKey) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM baselines WHERE machine=? AND analysis=? AND metric=? AND variant=? LIMIT 1",
            (key.machine, key.analysis, key.metric, key.variant),
        ).fetchone()
        return row is not None

    def _select(self, where: str, args: tuple[object, ...]) -> list[Baseline]:
        rows = self.conn.execute(
            "SELECT machine, analysis, metric, variant, value, effective_from, set_by, reason, set_at,"
            f" window_from, window_to FROM baselines WHERE {where}",
            args,
        )
        return [
            Baseline(SeriesKey(m, a, me, va), v, ef, by, why, at, (wf, wt) if wf and wt else None)
            for m, a, me, va, v, ef, by, why, at, wf, wt in rows
        ]


def current(history: list[Baseline]) -> list[Baseline]:
    """The latest baseline of each series, from `Baselines.history`."""
    latest: dict[SeriesKey, Baseline] = {}
    for b in history:
        latest[b.key] = b
    return list(latest.values())


def now_text() -> str:
    return to_text(dt.datetime.now(dt.UTC))


def mean_of(points: list[tuple[str, float]]) -> tuple[float, tuple[str, str]]:
    """The mean of (acquired, value) points and the window they span."""
    return statistics.fmean(v for _, v in points), (points[0][0], points[-1][0])


def from_last(
    record: Record, key: SeriesKey, n: int, *, set_by: str, reason: str, effective_from: str | None = None
) -> Baseline:
    """The mean of the series' last n results. Raises ValueError when it has fewer."""
    points = record.last(key, n)
    if len(points) < n:
        raise ValueError(f"{_name(key)} has {len(points)} result(s) in the record; --from-last {n} needs {n}")
    value, window = mean_of(points)
    return Baseline(key, value, effective_from or now_text(), set_by, reason, now_text(), window)


def auto_baseline(record: Record, baselines: Baselines, key: SeriesKey, n: int) -> Baseline | None:
    """`auto-baseline: N`: a series with no baseline yet gets the mean of its first N results, in
    force from the N-th one's acquisition time. Returns the baseline set, if any."""
    if n <= 0 or baselines.has_any(key):
        return None
    points = record.first(key, n)
    if len(points) < n:
        return None
    value, window = mean_of(points)
    reason = f"mean of the first {n} results"
    return baselines.set(Baseline(key, value, window[1], AUTO, reason, now_text(), window))


def _name(key: SeriesKey) -> str:
    variant = f" ({key.variant})" if key.variant else ""
    return f"{key.machine} {key.analysis} {key.metric}{variant}"
