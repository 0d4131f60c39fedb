"""Starshot verdicts on recorded results: pylinac's `passed` on the wobble diameter, the numbers in
the reason, film scans said so, and too few spokes never judged."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pylinac.starshot import StarshotResults

from linac_qa.analyses.criteria import Implausible
from linac_qa.model import Status
from tests.unit.analyses.recorded import verdict


def star(diameter_mm: float, passed: bool, spokes: int = 4) -> Any:
    return StarshotResults.model_construct(
        circle_diameter_mm=diameter_mm,
        tolerance_mm=1.0,
        angles=[45.0 * i for i in range(spokes)],
        reference_to_isocenter_distance_mm=0.12,
        passed=passed,
    )


def test_a_small_wobble_passes_saying_its_numbers() -> None:
    v = verdict("starshot", star(0.41, passed=True))
    assert (v.status, v.reason, v.judged) == (Status.PASSED, "wobble diameter 0.41 mm <= 1.00 mm", True)
    assert v.metrics == {
        "wobble_diameter_mm": 0.41,
        "tolerance_mm": 1.0,
        "spokes": 4,
        "center_to_reference_mm": 0.12,
    }


def test_a_large_wobble_fails_saying_its_numbers() -> None:
    v = verdict("starshot", star(1.37, passed=False))
    assert (v.status, v.reason) == (Status.FAILED, "wobble diameter 1.37 mm > 1.00 mm")


def test_a_film_says_its_sid_was_assumed() -> None:
    v = verdict("starshot", star(0.41, passed=True), "", "Starshot film scan.tif", film=True)
    assert v.reason == "wobble diameter 0.41 mm <= 1.00 mm; film: SID taken as film-sid-mm"


def test_no_diameter_is_an_error_naming_the_key() -> None:
    v = verdict("starshot", star(math.nan, passed=False))
    assert v.status is Status.ERROR
    assert v.reason.startswith(
        "wobble diameter (starshot.analysis.tolerance) not judged: pylinac gave no value"
    )


def test_too_few_spokes_are_no_starshot() -> None:
    with pytest.raises(Implausible, match=r"^2 spokes found, at least 3 expected$"):
        verdict("starshot", star(0.41, passed=True, spokes=2))
    with pytest.raises(Implausible, match=r"^4 spokes found, 6 expected \(starshot.expected-spokes\)$"):
        verdict("starshot", star(0.41, passed=True), "starshot:\n  expected-spokes: 6\n")
