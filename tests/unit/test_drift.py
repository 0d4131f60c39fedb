"""Drift (issue 16, acceptance 1): a sustained +1.5 sigma shift is flagged within 10 points;
1,000 points of stationary noise raise fewer than 1 % false warnings, with the product's own
20-point baseline window. Seeded; `benchmarks/drift_rules.py` gives the rates over many histories."""

import random
import statistics
from pathlib import Path

from linac_qa.config import load_settings
from linac_qa.history import drift
from linac_qa.history.judging import History, record_result
from linac_qa.history.series import Level
from linac_qa.testing.synthetic_history import drift_flags, result_on

METRIC = "symmetry_vertical_percent"


def test_the_chart_learns_sigma_from_every_moving_range_and_keeps_the_latest_out_of_its_centre() -> None:
    c = drift.chart([1.0, 1.1128, 1.0, 1.1128, 1.0], 5)
    assert c is not None and abs(c.sigma - 0.1) < 1e-9
    assert c.limits.low is not None and abs(c.limits.low - (c.centre - 0.3)) < 1e-9
    assert drift.chart([1.0, 1.1, 1.0, 1.1], 4) is None  # too few points for a sigma
    assert drift.chart([1.0, 1.1, 1.0, 1.1, 1.0, 1.1], 4) is None  # nor a window too short for one
    assert drift.chart([1.0] * 10, 10) is None  # no spread: no chart
    history = [0.0, 1.0] * 10 + [5.0] * drift.LAG  # a window, then a shift the rules are to judge
    c = drift.chart(history, 20)
    assert c is not None and c.centre == 0.5  # the shifted values are not in the centre line
    assert len(history) - 20 == drift.LAG


def test_rules() -> None:
    c = drift.Chart(0.0, 1.0)
    assert drift.broken_rule([0.5] * 20, c) is None  # within K of the centre: the CUSUM stays at 0
    assert drift.broken_rule([1.5] * 5, c) is None  # 5 x (1.5 - 0.75) = 3.75: not yet beyond H
    sustained = "sustained shift above the centre line (CUSUM beyond 4 sigma)"
    assert drift.broken_rule([1.5] * 6, c) == sustained  # 6 x 0.75 = 4.5
    assert drift.broken_rule([-1.5] * 6, c) == sustained.replace("above", "below")
    assert drift.broken_rule([2.1, -0.5, 2.1], c) == "2 of 3 beyond 2 sigma above the centre line"
    assert drift.broken_rule([2.1, 2.1, -0.5], c) is None  # the rule is completed by the last point
    assert drift.broken_rule([-2.5, 0.0, 2.1], c) is None  # one each side is no shift


def test_stationary_noise_raises_fewer_than_1_percent_false_warnings() -> None:
    """Ten histories of 1,000 points, each its own 20-point window: the chart's own uncertainty is
    part of the figure, as it is in a clinic's first years."""
    rates = []
    for seed in range(10):
        rng = random.Random(seed)
        values = [rng.gauss(0, 1) for _ in range(drift.DEFAULT_WINDOW + 1000)]
        flags = drift_flags(values, drift.DEFAULT_WINDOW)
        rates.append(sum(f is not None for f in flags) / len(flags))
    assert statistics.fmean(rates) < 0.01


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
