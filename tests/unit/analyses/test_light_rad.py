"""Light/radiation coincidence verdicts on recorded results: the field-to-BB offsets always, the
field size against a nominal size when one is known, the numbers in the reason."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pylinac.planar_imaging import LightRadResult

from linac_qa.analyses.criteria import Implausible
from linac_qa.model import Status
from tests.unit.analyses.recorded import verdict


def field(x_mm: float = 100.4, y_mm: float = 99.7, dx: float = 0.4, dy: float = -0.3) -> Any:
    return LightRadResult.model_construct(
        field_size_x_mm=x_mm, field_size_y_mm=y_mm, field_bb_offset_x_mm=dx, field_bb_offset_y_mm=dy
    )


def test_offsets_and_a_nominal_size_within_tolerance_pass() -> None:
    v = verdict("light-rad", field(), "", nominal_field_mm=[100, 100])
    assert v.status is Status.PASSED and v.judged
    assert v.reason == (
        "field-BB offset X 0.40 mm <= 2.00 mm; field-BB offset Y 0.30 mm <= 2.00 mm; "
        "field X vs 100 mm 0.40 mm <= 2.00 mm; field Y vs 100 mm 0.30 mm <= 2.00 mm"
    )
    assert v.metrics["nominal_field_x_mm"] == 100 and v.metrics["field_bb_offset_y_mm"] == -0.3


def test_an_offset_over_tolerance_fails_naming_only_it() -> None:
    v = verdict("light-rad", field(dx=2.5, dy=-3.0), "", nominal_field_mm=[100, 100])
    assert (v.status, v.reason) == (
        Status.FAILED,
        "field-BB offset X 2.50 mm > 2.00 mm; field-BB offset Y 3.00 mm > 2.00 mm",
    )


def test_a_field_too_large_for_its_nominal_size_fails() -> None:
    v = verdict("light-rad", field(x_mm=152.6), "", nominal_field_mm=[150, 100])
    assert (v.status, v.reason) == (Status.FAILED, "field X vs 150 mm 2.60 mm > 2.00 mm")


def test_without_a_nominal_size_the_size_is_not_judged_and_said() -> None:
    v = verdict("light-rad", field(x_mm=180.0))
    assert v.status is Status.PASSED and v.judged
    assert v.reason.endswith(
        "; field size not judged: no nominal size (a WxH token in cm) in the name or label"
    )


def test_tolerances_come_from_the_config() -> None:
    config = "light-rad:\n  tolerances:\n    field-bb-offset-mm: 0.3\n"
    v = verdict("light-rad", field(), config)
    assert v.status is Status.FAILED
    assert v.reason.startswith("field-BB offset X 0.40 mm > 0.30 mm; field size not judged")


@pytest.mark.parametrize(
    ("results", "problem"),
    [
        (field(dx=math.nan), "BBs not located (field-to-BB offset not measured)"),
        (field(x_mm=0.0), "no field found (field size not measured)"),
    ],
)
def test_without_bbs_or_field_nothing_is_judged(results: Any, problem: str) -> None:
    with pytest.raises(Implausible) as err:
        verdict("light-rad", results)
    assert err.value.problems == [problem]
