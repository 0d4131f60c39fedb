"""Picket fence verdicts on recorded results: pylinac's own `passed` at the configured tolerance,
the numbers in the reason, and a fence with a wrong count of pickets never judged."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pylinac.picketfence import PFResult

from linac_qa.analyses.criteria import Implausible
from linac_qa.model import Status
from tests.unit.analyses.recorded import verdict


def fence(max_error_mm: float, passed: bool, pickets: int = 10) -> Any:
    return PFResult.model_construct(
        max_error_mm=max_error_mm,
        tolerance_mm=0.5,
        action_tolerance_mm=0.3,
        percent_leaves_passing=100.0 if passed else 97.5,
        number_of_pickets=pickets,
        max_error_picket=3,
        max_error_leaf=12,
        passed=passed,
    )


def test_within_tolerance_passes_saying_its_numbers() -> None:
    v = verdict("picket-fence", fence(0.2, passed=True))
    assert (v.status, v.reason, v.judged) == (Status.PASSED, "max leaf error 0.20 mm <= 0.50 mm", True)
    assert v.metrics["max_error_mm"] == 0.2 and v.metrics["number_of_pickets"] == 10


def test_over_tolerance_fails_saying_its_numbers() -> None:
    v = verdict("picket-fence", fence(0.62, passed=False))
    assert (v.status, v.reason) == (Status.FAILED, "max leaf error 0.62 mm > 0.50 mm")


def test_pylinacs_own_passed_decides_even_at_the_limit() -> None:
    assert verdict("picket-fence", fence(0.5, passed=False)).status is Status.FAILED


def test_no_max_error_is_an_error_naming_the_key() -> None:
    v = verdict("picket-fence", fence(math.nan, passed=True))
    assert v.status is Status.ERROR and not v.judged
    assert v.reason == (
        "max leaf error (picket-fence.analysis.tolerance) not judged: "
        "pylinac gave no value (limit <= 0.50 mm)"
    )


def test_one_picket_is_no_fence() -> None:
    with pytest.raises(Implausible, match=r"^1 pickets found, at least 2 expected$"):
        verdict("picket-fence", fence(0.2, passed=True, pickets=1))


def test_a_picket_missed_is_a_picket_not_judged() -> None:
    config = "picket-fence:\n  expected-pickets: 10\n"
    with pytest.raises(
        Implausible, match=r"^9 pickets found, 10 expected \(picket-fence.expected-pickets\)$"
    ):
        verdict("picket-fence", fence(0.2, passed=True, pickets=9), config)
    assert verdict("picket-fence", fence(0.2, passed=True), config).status is Status.PASSED
