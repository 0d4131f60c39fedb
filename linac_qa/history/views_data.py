"""What the views draw (dashboard, e-mail charts, Prefect artifacts): every series of the record,
each point with the baseline, windows, control limits, level and drift it was judged with when it
was recorded (a later re-baseline never changes them), and its report."""

from __future__ import annotations

import datetime as dt
import json
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
    *_, acquired, value, result_id, report, judged = row
    j: dict[str, Any] = json.loads(judged) if judged else {}
    level = j.get("level")
    return Point(
        acquired=dt.datetime.fromisoformat(acquired),
        value=value,
        result_id=result_id,
        report=report,
        baseline=j.get("baseline"),
        tolerance=_window(j.get("tolerance")),
        action=_window(j.get("action")),
        control=_window(j.get("control")),
        level=Level(level) if level else None,
        drift=j.get("drift"),
    )


def _window(pair: list[float | None] | None) -> Window | None:
    return Window(pair[0], pair[1]) if pair else None
