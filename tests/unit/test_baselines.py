"""Baselines: versioned, append-only, and a result judged against the one in force at its
acquisition time, before and after a re-baseline; `--from-last N`; `auto-baseline` (issue 16,
acceptance 1). Metric values are written straight into the record."""

from pathlib import Path

import pytest

from linac_qa.config import load_settings
from linac_qa.history.baselines import AUTO, Baseline, current, from_last, now_text
from linac_qa.history.judging import History, record_result
from linac_qa.history.series import Level, SeriesKey
from linac_qa.history.store import to_text
from linac_qa.history.views_data import series_for
from linac_qa.model import AnalysisResult
from linac_qa.sections import AnalysisSettings
from linac_qa.testing.synthetic_history import day, result_on

METRIC = "flatness_vertical_percent"
KEY = SeriesKey("TrueBeam1", "field-analysis", METRIC, "")


def section(text: str = "") -> AnalysisSettings:
    return load_settings(text=f"field-analysis:\n{text}").section("field-analysis")


def record(history: History, i: int, value: float, settings: AnalysisSettings) -> AnalysisResult:
    result = result_on(i, {METRIC: value})
    record_result(history, result, {result.files[0]: "ab" * 32}, settings)
    return result


@pytest.fixture
def history(tmp_path: Path):
    h = History.open(tmp_path)
    yield h
    h.close()


def set_baseline(history: History, value: float, effective_day: int, reason: str = "") -> None:
    history.baselines.set(Baseline(KEY, value, to_text(day(effective_day)), "physicist", reason, now_text()))


def test_judged_against_the_baseline_in_force_at_acquisition_time(history: History, tmp_path: Path) -> None:
    settings = section()
    set_baseline(history, 2.0, 0, "commissioning")
    before = record(history, 1, 3.5, settings)  # 1.5 above 2.0: tolerance (1), not action (2)
    set_baseline(history, 3.4, 5, "new target after the bending-magnet service")
    after = record(history, 6, 3.5, settings)  # 0.1 above 3.4: ok
    late = record(history, 3, 3.5, settings)  # acquired before the re-baseline, recorded after it
    assert (before.level, before.levels[METRIC].baseline) == (Level.TOLERANCE, 2.0)
    assert (after.level, after.levels[METRIC].baseline) == (Level.OK, 3.4)
    assert (late.level, late.levels[METRIC].baseline) == (Level.TOLERANCE, 2.0)
    # The re-baseline never rewrote the earlier verdicts: the views show each as it was judged.
    (series,) = series_for(tmp_path, "TrueBeam1")
    assert [(p.acquired, p.baseline, p.level) for p in series.points] == [
        (day(1), 2.0, Level.TOLERANCE),
        (day(3), 2.0, Level.TOLERANCE),
        (day(6), 3.4, Level.OK),
    ]
    assert [(b.value, b.reason) for b in series.baselines] == [
        (2.0, "commissioning"),
        (3.4, "new target after the bending-magnet service"),
    ]
    assert series.points[0].tolerance is not None and series.points[0].tolerance.high == 3.0


def test_from_last_5_is_the_mean_of_the_last_five(history: History) -> None:
    settings = section()
    for i, value in enumerate([9.0, 1.0, 2.0, 3.0, 4.0, 5.0]):
        record(history, i, value, settings)
    b = from_last(history.record, KEY, 5, set_by="physicist", reason="after service")
    assert b.value == 3.0 and b.window == (to_text(day(1)), to_text(day(5)))
    with pytest.raises(ValueError, match="has 6 result"):
        from_last(history.record, KEY, 7, set_by="physicist", reason="")


def test_auto_baseline_from_the_first_n_results(history: History) -> None:
    settings = section("  auto-baseline: 3\n")
    first = [record(history, i, v, settings) for i, v in enumerate([1.0, 1.2, 1.4])]
    later = record(history, 3, 3.3, settings)  # 2.1 above the mean 1.2: action
    (b,) = history.baselines.history()
    assert (b.value, b.set_by, b.effective_from) == (pytest.approx(1.2), AUTO, to_text(day(2)))
    assert [r.level for r in first] == [None, None, Level.OK]  # the third is judged by its own mean
    assert later.level is Level.ACTION


def test_baselines_are_append_only_and_versioned(history: History) -> None:
    set_baseline(history, 1.0, 0, "first")
    set_baseline(history, 2.0, 10, "second")
    set_baseline(history, 1.5, 5, "between, set last")
    assert [b.reason for b in history.baselines.history()] == ["first", "between, set last", "second"]
    assert [b.reason for b in current(history.baselines.history())] == ["second"]
    assert history.baselines.in_force(KEY, to_text(day(7))).value == 1.5  # type: ignore[union-attr]
    assert history.baselines.in_force(KEY, to_text(day(-1))) is None


def test_a_series_is_per_variant(history: History) -> None:
    settings = section("  auto-baseline: 1\n")
    record_result(history, result_on(0, {METRIC: 1.0}), {}, settings)
    fff = result_on(1, {METRIC: 5.0}, variant="fff=true")
    record_result(history, fff, {}, settings)
    assert fff.level is Level.OK  # its own baseline, not the flat beam's 1.0
    assert {b.key.variant for b in history.baselines.history()} == {"", "fff=true"}
