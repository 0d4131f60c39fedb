"""What every view of the record says first: each metric's latest result against its baseline,
failures and drift before the rest, in the same words (dashboard, e-mail, Prefect artifact)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from linac_qa.history.series import Level, MetricSeries, Point, SeriesKey

# Where a result stands, most urgent first: the order of every list a physicist reads.
ACTION, DRIFT, TOLERANCE, OK, UNJUDGED = range(5)
STANDING_WORDS = {ACTION: "ACTION", DRIFT: "drift", TOLERANCE: "tolerance", OK: "ok", UNJUDGED: "not judged"}


@dataclass(frozen=True)
class Latest:
    """A metric and the one result of it a view reports."""

    series: MetricSeries
    point: Point

    @property
    def standing(self) -> int:
        """An action level outranks drift (it is already a failure); drift outranks a tolerance
        level, being the warning that something is moving while the values still look fine."""
        if self.point.level is Level.ACTION:
            return ACTION
        if self.point.drift:
            return DRIFT
        return {Level.TOLERANCE: TOLERANCE, Level.OK: OK}.get(self.point.level, UNJUDGED)  # type: ignore[arg-type]

    @property
    def word(self) -> str:
        return STANDING_WORDS[self.standing]

    @property
    def change(self) -> str:
        """The value's change from its baseline, absolute and in percent, e.g. "+0.12 mm / +0.6 %"."""
        return change_text(self.point, self.series.unit)


def title(key: SeriesKey) -> str:
    """ "field-analysis flatness (energy=6X)": what names a metric in every view."""
    return f"{key.analysis} {key.metric}" + (f" ({key.variant})" if key.variant else "")


def number(value: float | None, unit: str = "") -> str:
    """Four significant digits: what the analyses resolve, and what a table cell shows."""
    if value is None:
        return "-"
    return f"{value:.4g}" + (f" {unit}" if unit else "")


def change_text(point: Point, unit: str) -> str:
    if point.baseline is None:
        return "-"
    delta = point.value - point.baseline
    percent = f" / {100 * delta / point.baseline:+.3g} %" if point.baseline else ""
    return f"{delta:+.3g}{f' {unit}' if unit else ''}{percent}"


def latest_first(series: Iterable[MetricSeries], result_ids: Collection[str] | None = None) -> list[Latest]:
    """Each metric's latest result, most urgent first. `result_ids`: only the results of one run
    (its latest point among them per metric; metrics it did not measure are left out); None: each
    metric's latest result whenever it was."""
    picked = []
    for s in series:
        points = s.points if result_ids is None else [p for p in s.points if p.result_id in result_ids]
        if points:
            picked.append(Latest(s, points[-1]))
    return sorted(picked, key=lambda x: (x.standing, title(x.series.key)))


def result_ids_of(series: Iterable[MetricSeries], reports: Collection[str]) -> frozenset[str]:
    """The record's ids of a run's results, found by their reports (the PDFs, relative to the
    directory): what a run knows of its results before the record names them."""
    wanted = set(reports)
    return frozenset(p.result_id for s in series for p in s.points if p.report in wanted)
