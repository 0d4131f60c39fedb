"""Drift on an individuals and moving-range chart (issue 16, acceptance 1): a sustained +1.5 sigma
shift is flagged within 10 points; 1,000 points of stationary noise raise fewer than 1 % false
warnings. Seeded, so each figure is one draw that holds, not a rate."""

import random
import statistics
from pathlib import Path

from linac_qa.config import load_settings
from linac_qa.history import drift
from linac_qa.history.judging import History, record_result
from linac_qa.history.series import Level
from linac_qa.testing.synthetic_history import result_on

METRIC = "symmetry_vertical_percent"


def flagged(values: list[float], chart: drift.Chart) -> list[bool]:
    return [
        drift.broken_rule(values[max(0, i - drift.RUN + 1) : i + 1], chart) is not None
        for i in range(len(values))
    ]


def test_chart_from_the_moving_ranges() -> None:
    c = drift.chart(1.0, [1.0, 1.1128, 1.0, 1.1128, 1.0])
    assert c is not None and abs(c.sigma - 0.1) < 1e-9
    assert c.limits.low is not None and abs(c.limits.low - 0.7) < 1e-9
    assert drift.chart(1.0, [1.0, 1.1, 1.0, 1.1]) is None  # too few points for a sigma
    assert drift.chart(1.0, [1.0] * 10) is None  # no spread: no chart


def test_rules() -> None:
    c = drift.Chart(0.0, 1.0)
    assert drift.broken_rule([0.1] * 7, c) is None
    assert drift.broken_rule([0.1] * 8, c) == "8 in a row above the centre line"
    assert drift.broken_rule([-0.1] * 8, c) == "8 in a row below the centre line"
    assert drift.broken_rule([2.1, -0.5, 2.1], c) == "2 of 3 beyond 2 sigma above the centre line"
    assert drift.broken_rule([2.1, 2.1, -0.5], c) is None  # the rule is completed by the last point
    assert drift.broken_rule([-2.5, 0.0, 2.1], c) is None  # one each side is no shift


def test_stationary_noise_raises_fewer_than_1_percent_false_warnings() -> None:
    rng = random.Random(16)
    window = [rng.gauss(0, 1) for _ in range(200)]  # a long baseline window: the chart's error is small
    chart = drift.chart(statistics.fmean(window), window)
    assert chart is not None
    flags = flagged([rng.gauss(0, 1) for _ in range(1000)], chart)
    assert sum(flags) < 10


def test_a_sustained_1_5_sigma_shift_is_flagged_within_10_points(tmp_path: Path) -> None:
    """Through the run's own path: the first 20 results set the baseline and its chart."""
    rng = random.Random(42)
    settings = load_settings(text="field-analysis:\n  auto-baseline: 20\n").section("field-analysis")
    history = History.open(tmp_path)
    try:
        results = []
        for i in range(30):
            value = (
                1.0 + 0.1 * rng.gauss(0, 1) + (0.15 if i >= 20 else 0)
            )  # sigma 0.1, +1.5 sigma from day 20
            results.append(result_on(i, {METRIC: round(value, 4)}))
            record_result(history, results[-1], {}, settings)
    finally:
        history.close()
    shifted = results[20:]
    first = next(n for n, r in enumerate(shifted, 1) if r.levels[METRIC].drift)
    assert first <= 10
    warned = shifted[first - 1]
    assert warned.level is Level.OK  # still within tolerance: the early warning
    assert any(w.startswith(f"drift: {METRIC}") for w in warned.warnings)
    assert all(r.levels[METRIC].drift is None for r in results[:20])
