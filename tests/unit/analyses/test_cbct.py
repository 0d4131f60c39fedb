"""CT phantom verdicts on recorded results. A CatPhan on the configured criteria (pylinac's HU
linearity, uniformity, geometry and slice thickness flags with their numbers; low contrast and MTF
against minimums when set); other models on pylinac's own pass flags. A module not found, or a
criterion set for a model that cannot be judged on it, is never a pass."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pylinac.ct import CatphanResult, CTP404Result, CTP486Result, CTP515Result, CTP528Result, ROIResult
from pylinac.quart import QuartDVTResult, QuartUniformityModuleOutput

from linac_qa.analyses.criteria import Implausible
from linac_qa.model import Status
from tests.unit.analyses.recorded import verdict

SERIES = tuple(f"CT/CT.{i}.dcm" for i in range(12))
ALL_OFF = "cbct:\n  criteria:\n    hu-linearity: false\n    uniformity: false\n    geometry: false\n"
ALL_OFF += "    slice-thickness: false\n"


def roi(name: str, value: float, nominal: float) -> Any:
    return ROIResult.model_construct(
        name=name, value=value, difference=value - nominal, nominal_value=nominal
    )


def catphan(
    *, hu_passed: bool = True, air: float = -995.0, uniformity: bool = True, mtf50: float = 0.45
) -> Any:
    return CatphanResult.model_construct(
        catphan_roll_deg=0.3,
        num_images=12,
        ctp404=CTP404Result.model_construct(
            hu_rois={"Air": roi("Air", air, -1000.0), "Acrylic": roi("Acrylic", 118.0, 120.0)},
            hu_tolerance=40.0,
            hu_linearity_passed=hu_passed,
            avg_line_distance_mm=50.02,
            geometry_passed=True,
            measured_slice_thickness_mm=2.48,
            thickness_passed=True,
        ),
        ctp486=CTP486Result.model_construct(
            uniformity_index=1.23,
            passed=uniformity,
            rois={"Top": roi("Top", 2.0, 0.0), "Center": roi("Center", 1.0, 0.0)},
        ),
        ctp515=CTP515Result.model_construct(num_rois_seen=5),
        ctp528=CTP528Result.model_construct(mtf_lp_mm={50: mtf50}),
    )


def test_a_catphan_within_its_criteria_passes_with_its_numbers() -> None:
    v = verdict("cbct", catphan(), "", *SERIES)
    assert (v.status, v.judged) == (Status.PASSED, True)
    assert v.reason == (
        "HU linearity passed (worst Air -995 HU vs -1000, tolerance 40); "
        "uniformity passed (uniformity index 1.23); geometry passed (mean node distance 50.02 mm); "
        "slice thickness passed (measured 2.48 mm)"
    )
    assert v.metrics["hu_worst_roi"] == "Air" and v.metrics["hu_worst_difference"] == 5.0


def test_a_catphan_failing_hu_linearity_fails_naming_it() -> None:
    v = verdict("cbct", catphan(hu_passed=False, air=-940.0), "", *SERIES)
    assert (v.status, v.reason) == (
        Status.FAILED,
        "HU linearity FAILED (worst Air -940 HU vs -1000, tolerance 40)",
    )


def test_minimums_for_low_contrast_and_mtf_are_judged_when_set() -> None:
    config = ALL_OFF + "    low-contrast-min-rois: 6\n    mtf50-min-lp-mm: 0.4\n"
    v = verdict("cbct", catphan(), config, *SERIES)
    assert (v.status, v.reason) == (Status.FAILED, "low-contrast ROIs seen 5 < 6")
    v = verdict("cbct", catphan(mtf50=math.nan), config.replace("6\n", "5\n"), *SERIES)
    assert v.status is Status.ERROR
    assert v.reason.startswith("MTF 50 % (cbct.criteria.mtf50-min-lp-mm) not judged: pylinac gave no value")


def test_a_catphan_with_every_criterion_off_is_not_judged() -> None:
    v = verdict("cbct", catphan(), ALL_OFF, *SERIES)
    assert (v.status, v.judged, v.reason) == (Status.PASSED, False, "not judged: no criteria configured")


def test_a_catphan_without_its_uniformity_module_or_an_hu_value_is_never_judged() -> None:
    lost = catphan()
    lost.ctp486 = None
    with pytest.raises(Implausible, match=r"^uniformity module \(CTP486\) not located$"):
        verdict("cbct", lost, "", *SERIES)
    with pytest.raises(Implausible, match=r"^HU not measured in Air \(CTP404\)$"):
        verdict("cbct", catphan(air=math.nan), "", *SERIES)


def quart(uniform: bool, centre: bool = True) -> Any:
    return QuartDVTResult.model_construct(
        uniformity_module=QuartUniformityModuleOutput.model_construct(
            passed=uniform, rois={"Center": {"value": 5.0, "passed": centre}}
        )
    )


def test_other_models_are_judged_on_pylinacs_own_flags() -> None:
    v = verdict("cbct", quart(False), "", *SERIES, model="QuartDVT")
    assert (v.status, v.reason) == (Status.FAILED, "uniformity_module FAILED")
    assert v.metrics == {"pylinac_checks": 2, "failed_checks": 1}
    assert verdict("cbct", quart(True), "", *SERIES, model="QuartDVT").reason == (
        "uniformity_module.rois.Center passed; uniformity_module passed"
    )


def test_a_catphan_only_criterion_set_for_another_model_is_an_error_not_a_skip() -> None:
    v = verdict(
        "cbct", quart(True), "cbct:\n  criteria:\n    mtf50-min-lp-mm: 0.4\n", *SERIES, model="QuartDVT"
    )
    assert v.status is Status.ERROR
    assert v.reason.startswith("MTF 50 % (CatPhan models only, not QuartDVT) (cbct.criteria.mtf50-min-lp-mm)")
