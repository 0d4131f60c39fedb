"""Seeded metric histories for the views' tests, benchmark and screenshot: `MetricSeries` values
built directly (no record, no analysis), with a re-baseline, tolerance and action windows, control
limits, a drifting stretch and a failure, so that every element a view draws is present."""

from __future__ import annotations

import datetime as dt
import random

from linac_qa.history.series import BaselineChange, Level, MetricSeries, Point, SeriesKey, Window

START = dt.datetime(2021, 1, 4, 7, 30, tzinfo=dt.UTC)
METRICS = (  # (analysis, metric, variant, unit, baseline, tolerance, action, noise)
    ("picket-fence", "max_error_mm", "", "mm", 0.2, 0.3, 0.5, 0.03),
    ("field-analysis", "flatness", "energy=6X", "%", 102.0, 1.0, 2.0, 0.12),
    ("field-analysis", "symmetry", "energy=6X", "%", 100.5, 1.0, 2.0, 0.1),
    ("field-analysis", "flatness", "energy=10X FFF", "%", 104.0, 1.0, 2.0, 0.15),
    ("winston-lutz", "max_2d_cax_to_bb_mm", "", "mm", 0.5, 0.5, 1.0, 0.06),
    ("cbct", "hu_linearity_roi", "phantom=CatPhan604", "HU", 0.0, 20.0, 40.0, 3.0),
    ("starshot", "wobble_diameter_mm", "", "mm", 0.6, 0.4, 0.8, 0.05),
    ("vmat", "drgs_deviation", "", "%", 0.8, 1.0, 1.5, 0.1),
)


def seeded_histories(
    machine: str = "TrueBeam1", metrics: int = 8, points: int = 60, seed: int = 1
) -> list[MetricSeries]:
    """`metrics` series of `points` nightly results each; series 0 ends in a drift (a sustained
    +2 sigma shift), series 1 in an action-level failure, series 2 at tolerance level, and every
    series is re-baselined two thirds of the way."""
    rng = random.Random(seed)
    out = []
    for i in range(metrics):
        analysis, metric, variant, unit, base, tol, act, noise = METRICS[i % len(METRICS)]
        if i >= len(METRICS):
            variant = f"{variant} #{i // len(METRICS)}".strip()
        key = SeriesKey(machine, analysis, metric, variant)
        rebase_at = points * 2 // 3
        new_base = base + noise * 0.8
        changes = (
            BaselineChange(START, base, "physicist", "commissioning"),
            BaselineChange(
                START + dt.timedelta(days=rebase_at, hours=-2), new_base, "physicist", "MLC recalibrated"
            ),
        )
        series_points = []
        for n in range(points):
            b = base if n < rebase_at else new_base
            value = rng.gauss(b, noise)
            drift = None
            if i % len(METRICS) == 0 and n >= points - 9:
                value += 2 * noise
                drift = "sustained shift above the centre line" if n == points - 1 else None
            if i % len(METRICS) == 1 and n == points - 1:
                value = b + act * 1.2
            if i % len(METRICS) == 2 and n == points - 1:
                value = b + (tol + act) / 2
            series_points.append(
                Point(
                    acquired=START + dt.timedelta(days=n, minutes=rng.randint(0, 40)),
                    value=value,
                    result_id=f"{analysis}-{i}-{n}",
                    report=f"{n // 30:04d}/{analysis}/RI.QA.{metric}_{n}_analysis.pdf",
                    baseline=b,
                    tolerance=Window(b - tol, b + tol),
                    action=Window(b - act, b + act),
                    control=Window(b - 3 * noise, b + 3 * noise),
                    level=_level(value, b, tol, act),
                    drift=drift,
                )
            )
        out.append(MetricSeries(key, unit, tuple(series_points), changes))
    return out


def _level(value: float, baseline: float, tol: float, act: float) -> Level:
    change = abs(value - baseline)
    return Level.ACTION if change > act else Level.TOLERANCE if change > tol else Level.OK
