"""Planar phantom verdicts on recorded results: each optional criterion against its minimum, a
phantom without criteria "not judged", a criterion pylinac gave no value for an error, and an
image without the phantom's features never judged."""

from __future__ import annotations

from typing import Any

import pytest
from pylinac.planar_imaging import PlanarResult

from linac_qa.analyses.criteria import Implausible
from linac_qa.model import Status
from tests.unit.analyses.recorded import verdict

CRITERIA = (
    "planar-imaging:\n  criteria:\n    min-low-contrast-rois-seen: 4\n    min-mtf50-lp-mm: 0.5\n"
    "    min-median-contrast: 0.1\n    min-median-cnr: 5\n"
)


def phantom(seen: int = 6, mtf50: float | None = 0.62, contrast: float = 0.25, cnr: float = 12.0) -> Any:
    return PlanarResult.model_construct(
        num_contrast_rois_seen=seen,
        mtf_lp_mm=[{50: mtf50}] if mtf50 is not None else [],
        median_contrast=contrast,
        median_cnr=cnr,
    )


def test_without_criteria_a_phantom_is_not_judged_never_a_pass() -> None:
    v = verdict("planar-imaging", phantom())
    assert (v.status, v.judged) == (Status.PASSED, False)
    assert v.reason == "not judged: no criteria configured (planar-imaging.criteria)"
    assert v.metrics == {
        "low_contrast_rois_seen": 6,
        "mtf50_lp_mm": 0.62,
        "median_contrast": 0.25,
        "median_cnr": 12.0,
    }


def test_every_criterion_met_passes_saying_its_numbers() -> None:
    v = verdict("planar-imaging", phantom(), CRITERIA)
    assert (v.status, v.judged) == (Status.PASSED, True)
    assert v.reason == (
        "low-contrast ROIs seen 6 >= 4; MTF 50 % 0.62 lp/mm >= 0.50 lp/mm; "
        "median contrast 0.250 >= 0.100; median CNR 12.0 >= 5.0"
    )


def test_a_criterion_not_met_fails_naming_only_it() -> None:
    v = verdict("planar-imaging", phantom(mtf50=0.41, cnr=4.2), CRITERIA)
    assert (v.status, v.reason) == (Status.FAILED, "MTF 50 % 0.41 lp/mm < 0.50 lp/mm; median CNR 4.2 < 5.0")


def test_an_mtf_pylinac_did_not_give_is_an_error_naming_the_key() -> None:
    v = verdict("planar-imaging", phantom(mtf50=None), CRITERIA)
    assert v.status is Status.ERROR
    assert v.reason.startswith(
        "MTF 50 % (planar-imaging.criteria.min-mtf50-lp-mm) not judged: pylinac gave no value"
    )


def test_no_feature_of_the_phantom_found_is_never_judged() -> None:
    with pytest.raises(Implausible, match="no low-contrast ROI seen and no line pair resolved"):
        verdict("planar-imaging", phantom(seen=0, mtf50=None), CRITERIA)
