"""VMAT verdicts on recorded results: pylinac's `passed` on the worst segment deviation, the numbers
in the reason, and a pair whose images show no segments (or fewer than the test has) never judged.
`judge_segments` takes what the images show (each image's least-dosed segment, the DMLC-to-open
pattern) as numbers beside pylinac's results."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pylinac.vmat import SegmentResult, VMATResult

from linac_qa.analyses.criteria import Implausible
from linac_qa.analyses.vmat import judge_segments
from linac_qa.model import Status

DOSES = {"open": 0.92, "DMLC": 0.88}  # fractions of each image's range: the field covers every segment
SEGMENTS = 7  # DRGS


def vmat(max_deviation: float, passed: bool, *, segments: int = SEGMENTS, r_dev: float = 0.4) -> Any:
    data = [SegmentResult.model_construct(r_corr=1.01, r_dev=r_dev) for _ in range(segments)]
    return VMATResult.model_construct(
        max_deviation_percent=max_deviation,
        abs_mean_deviation=0.6,
        tolerance_percent=1.5,
        segment_data=data,
        passed=passed,
    )


def test_segments_within_tolerance_pass_saying_the_numbers() -> None:
    v = judge_segments(vmat(-0.87, passed=True), SEGMENTS, DOSES, 0.21)
    assert (v.status, v.reason, v.judged) == (Status.PASSED, "max segment deviation 0.87 % <= 1.50 %", True)
    assert v.metrics == {
        "max_deviation_percent": -0.87,
        "abs_mean_deviation_percent": 0.6,
        "tolerance_percent": 1.5,
        "segments": SEGMENTS,
        "segment_pattern_percent": 21.0,
    }


def test_a_segment_over_tolerance_fails_saying_the_numbers() -> None:
    v = judge_segments(vmat(2.34, passed=False), SEGMENTS, DOSES, None)
    assert (v.status, v.reason) == (Status.FAILED, "max segment deviation 2.34 % > 1.50 %")
    assert v.metrics["segment_pattern_percent"] is None  # segments not on one row (DRCS)


def test_no_deviation_is_an_error_naming_the_key() -> None:
    v = judge_segments(vmat(math.nan, passed=False), SEGMENTS, DOSES, 0.21)
    assert v.status is Status.ERROR
    assert v.reason.startswith(
        "max segment deviation (vmat.analysis.tolerance) not judged: pylinac gave no value"
    )


@pytest.mark.parametrize(
    ("results", "doses", "pattern", "problem"),
    [
        (vmat(0.5, True, segments=6), DOSES, 0.21, "6 segments analysed, 7 expected"),
        (vmat(0.5, True, r_dev=math.nan), DOSES, 0.21, "segment ratio not measured"),
        (
            vmat(0.5, True),
            {"open": 0.92, "DMLC": 0.12},
            0.21,
            "no dose over the segments in the DMLC image (0.12 of its range)",
        ),
        (
            vmat(0.5, True),
            DOSES,
            0.004,
            "the DMLC image shows no segments: its ratio to the open image varies 0.4 % across them"
            " (the same image twice, or two open fields?)",
        ),
    ],
)
def test_a_pair_without_its_segments_is_never_judged(
    results: Any, doses: dict[str, float], pattern: float, problem: str
) -> None:
    with pytest.raises(Implausible) as err:
        judge_segments(results, SEGMENTS, doses, pattern)
    assert err.value.problems == [problem]
