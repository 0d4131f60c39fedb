"""Tolerance and action levels: percent and absolute, relative to the baseline or absolute, give
ok, tolerance and action at the boundary values exactly (issue 16, acceptance 1)."""

from pathlib import Path

import pytest

from linac_qa.config import ConfigError, load_settings
from linac_qa.history.judging import History, record_result
from linac_qa.history.levels import LevelSpec, level_of
from linac_qa.history.series import Level
from linac_qa.model import Status
from linac_qa.testing.synthetic_history import result_on

OK, TOL, ACT = Level.OK, Level.TOLERANCE, Level.ACTION


def judged(spec: LevelSpec, value: float, baseline: float | None) -> Level | None:
    windows = spec.windows(baseline)
    return level_of(value, *windows) if windows else None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (100.0, OK),
        (101.0, OK),
        (99.0, OK),
        (101.0001, TOL),
        (102.0, TOL),
        (98.0, TOL),
        (102.0001, ACT),
        (97.9, ACT),
    ],
)
def test_percent_of_the_baseline_at_its_boundaries(value: float, expected: Level) -> None:
    assert judged(LevelSpec(tolerance="1%", action="2%"), value, 100.0) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.2, OK), (1.7, OK), (0.7, OK), (1.71, TOL), (2.2, TOL), (0.2, TOL), (2.21, ACT), (0.19, ACT)],
)
def test_absolute_change_from_the_baseline_at_its_boundaries(value: float, expected: Level) -> None:
    # 0.1 + 0.2 style sums land a hair off the limit: a value on a limit is within it.
    assert judged(LevelSpec(tolerance=0.5, action=1.0), value, 1.2) is expected


@pytest.mark.parametrize(
    ("value", "expected"), [(0.75, OK), (0.76, TOL), (1.0, TOL), (1.01, ACT), (-3.0, OK)]
)
def test_absolute_limits_need_no_baseline(value: float, expected: Level) -> None:
    spec = LevelSpec(tolerance=0.75, action=1.0, relative_to="absolute")
    assert judged(spec, value, None) is expected


def test_absolute_window_on_both_sides() -> None:
    spec = LevelSpec(tolerance=[9.0, 11.0], action=[8.0, None], relative_to="absolute")
    assert [judged(spec, v, None) for v in (9.0, 11.0, 8.0, 7.99, 50.0)] == [OK, OK, TOL, ACT, TOL]


def test_relative_levels_without_a_baseline_judge_nothing() -> None:
    assert judged(LevelSpec(tolerance="1%", action="2%"), 500.0, None) is None


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("    flatness_vertical_percent: {tolerance: lots, action: 2}\n", "percentage like '1%'"),
        ("    flatness_vertical_percent: {tolerance: -1, action: 2}\n", "0 or more"),
        ("    flatness_vertical_percent: {tolerance: [0, 1], action: 2}\n", "not limits"),
        (
            "    flatness_vertical_percent: {tolerance: 1%, action: 2, relative-to: absolute}\n",
            "not percentages",
        ),
        ("    flatness_vertical_percent: {tolerance: 1, action: 2, relative-to: zero}\n", "baseline"),
    ],
)
def test_bad_levels_are_config_errors_naming_the_key(text: str, hint: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(text="field-analysis:\n  levels:\n" + text, source="clinic.yml")
    message = str(err.value)
    assert "clinic.yml" in message and "field-analysis.levels.flatness_vertical_percent" in message
    assert hint in message


def test_action_fails_tolerance_flags_and_ok_passes(tmp_path: Path) -> None:
    """The reason names the metric, the value, the baseline and the level in numbers; the JSON
    summary's row gains `level` and each metric's judgement with the baseline used."""
    settings = load_settings(text="field-analysis:\n  auto-baseline: 2\n").section("field-analysis")
    history = History.open(tmp_path)
    try:
        for i in (0, 1):
            record_result(history, result_on(i, {"symmetry_vertical_percent": 1.0}), {}, settings)
        ok = result_on(2, {"symmetry_vertical_percent": 2.0})
        tolerance = result_on(3, {"symmetry_vertical_percent": 2.5})
        action = result_on(4, {"symmetry_vertical_percent": 3.01, "fff": False})
        for r in (ok, tolerance, action):
            record_result(history, r, {}, settings)
    finally:
        history.close()
    assert (ok.status, ok.level, ok.warnings) == (Status.PASSED, OK, [])
    assert tolerance.status is Status.PASSED and tolerance.level is TOL
    assert tolerance.warnings == [
        "tolerance level: symmetry_vertical_percent 2.5 (baseline 1, tolerance [0, 2])"
    ]
    assert action.status is Status.FAILED and action.level is ACT
    assert (
        action.reason
        == "action level: symmetry_vertical_percent 3.01 (baseline 1, action [-1, 3]); synthetic"
    )
    document = action.model_dump(mode="json")
    assert document["level"] == "action"
    assert document["levels"]["symmetry_vertical_percent"] == {
        "level": "action",
        "value": 3.01,
        "baseline": 1.0,
        "tolerance": [0.0, 2.0],
        "action": [-1.0, 3.0],
        "control": None,
        "drift": None,
    }
