"""What the views draw (dashboard, e-mail charts, Prefect artifacts): every series of the record,
each point with the baseline, windows, control limits, level and drift it was judged with when it
was recorded (a later re-baseline never changes them), and its report."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

from linac_qa.history.baselines import Baselines
from linac_qa.history.record import RECORD_FILE, Record, Row
from linac_qa.history.series import BaselineChange, MetricSeries, Point, SeriesKey, Window
from linac_qa.history.store import from_text
from linac_qa.model import MetricLevel
from linac_qa.records.ledger import STATE_DIR


def series_for(directory: Path, machine: str | None = None) -> list[MetricSeries]:
    """Every series of the directory's record (of one machine), by machine, analysis, metric and
    variant; each with its baselines in the order they took effect. none without a record."""
    if not (directory / STATE_DIR / RECORD_FILE).is_file():
        return []
    record, baselines = Record(directory), Baselines(directory)
    try:
        rows = record.rows(machine)
        changes: dict[SeriesKey, list[BaselineChange]] = {}
        for b in baselines.history(machine):
            changes.setdefault(b.key, []).append(b.change())
    finally:
        record.close()
        baselines.close()
    return [
        MetricSeries(
            key=key,
            unit=first.unit,
            points=tuple(_point(r) for r in (first, *rest)),
            baselines=tuple(changes.get(key, ())),
        )
        for key, group in groupby(rows, key=lambda r: r.key)
        for first, *rest in [list(group)]
    ]


def _point(row: Row) -> Point:
    j: MetricLevel | None = row.judgement
    return Point(
        acquired=from_text(row.acquired),
        value=row.value,
        result_id=row.result_id,
        report=row.report,
        baseline=j.baseline if j else None,
        tolerance=_window(j.tolerance) if j else None,
        action=_window(j.action) if j else None,
        control=_window(j.control) if j else None,
        level=j.level if j else None,
        drift=j.drift if j else None,
    )


def _window(pair: tuple[float | None, float | None] | None) -> Window | None:
    return Window(*pair) if pair is not None else None
