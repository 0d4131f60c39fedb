"""Open-field verdicts on recorded results: symmetry and flatness against the configured percent,
the worse of the two axes in the reason, an FFF beam's flatness not judged, and a field not found
never judged."""

from __future__ import annotations

from typing import Any

import pytest
from pylinac.field_analysis import FieldResult

from linac_qa.analyses.criteria import Implausible
from linac_qa.model import Status
from tests.unit.analyses.recorded import verdict


def field(size_mm: float = 100.0, **protocol: float | None) -> Any:
    values = {
        "symmetry_horizontal": 0.8,
        "symmetry_vertical": -1.5,
        "flatness_horizontal": 2.5,
        "flatness_vertical": 1.9,
        **protocol,
    }
    return FieldResult.model_construct(
        protocol_results=values, field_size_horizontal_mm=size_mm, field_size_vertical_mm=size_mm
    )


def test_a_flat_symmetric_field_passes_on_the_worse_axis() -> None:
    v = verdict("field-analysis", field())
    assert (v.status, v.reason, v.judged) == (
        Status.PASSED,
        "symmetry 1.50 % <= 2.00 %; flatness 2.50 % <= 3.00 %",
        True,
    )
    assert v.metrics["symmetry_vertical_percent"] == -1.5 and v.metrics["fff"] is False


def test_an_asymmetric_field_fails_on_symmetry_alone() -> None:
    v = verdict("field-analysis", field(symmetry_horizontal=-2.4))
    assert (v.status, v.reason) == (Status.FAILED, "symmetry 2.40 % > 2.00 %")


def test_tolerances_come_from_the_config() -> None:
    v = verdict("field-analysis", field(), "field-analysis:\n  tolerances:\n    flatness-percent: 2.0\n")
    assert (v.status, v.reason) == (Status.FAILED, "flatness 2.50 % > 2.00 %")


def test_an_fff_beams_flatness_is_not_judged_nor_needed() -> None:
    v = verdict("field-analysis", field(flatness_horizontal=None, flatness_vertical=None), "", fff=True)
    assert (v.status, v.reason) == (Status.PASSED, "symmetry 1.50 % <= 2.00 %; FFF beam: flatness not judged")
    assert v.metrics["fff"] is True


@pytest.mark.parametrize(
    ("results", "problem"),
    [
        (field(symmetry_vertical=None), "symmetry_vertical not measured"),
        (field(size_mm=float("nan")), "no field found (field size not measured)"),
    ],
)
def test_what_was_not_measured_is_never_judged(results: Any, problem: str) -> None:
    with pytest.raises(Implausible) as err:
        verdict("field-analysis", results)
    assert err.value.problems == [problem]
