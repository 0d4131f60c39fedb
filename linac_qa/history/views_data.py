"""What the views draw (dashboard, e-mail charts, Prefect artifacts): every series of the record,
each point with the baseline, windows, control limits, level and drift it was judged with when it
was recorded (a later re-baseline never changes them), and its report."""

from __future__ import annotations

import datetime as dt
from itertools import groupby
from pathlib import Path
from typing import Any

from linac_qa.history.baselines import Baselines
from linac_qa.history.record import RECORD_FILE, Record
from linac_qa.history.series import BaselineChange, Level, MetricSeries, Point, SeriesKey, Window
from linac_qa.records.ledger import STATE_DIR


def series_for(directory: Path, machine: str | None = None) -> list[MetricSeries]:
    """Every series of the directory's record (of one machine), by machine, analysis, metric and
    variant; each with its baselines in the order they took effect. None without a record."""
    if not (directory / STATE_DIR / RECORD_FILE).is_file():
        return []
    record, baselines = Record(directory), Baselines(directory)
    try:
        found = record.series_rows(machine)
        changes: dict[SeriesKey, list[BaselineChange]] = {}
        for b in baselines.history(machine):
            changes.setdefault(b.key, []).append(b.change())
    finally:
        record.close()
        baselines.close()
    out = []
    for key_fields, group in groupby(found, key=lambda r: r[:4]):
        rows = list(group)
        key = SeriesKey(*key_fields)
        points = tuple(_point(r) for r in rows)
        out.append(MetricSeries(key, rows[0][4], points, tuple(changes.get(key, ()))))
    return out


def _point(row: tuple[Any, ...]) -> Point:
    *_, acquired, value, result_id, report, level, baseline, tl, th, al, ah, cl, ch, drift = row
    return Point(
        acquired=dt.datetime.fromisoformat(acquired),
        value=value,
        result_id=result_id,
        report=report,
        baseline=baseline,
        tolerance=_window(tl, th),
        action=_window(al, ah),
        control=_window(cl, ch),
        level=LEVELS[level] if level else None,
        drift=drift,
    )


LEVELS = {level.value: level for level in Level}


def _window(low: float | None, high: float | None) -> Window | None:
    return None if low is None and high is None else Window(low, high)
