"""Winston-Lutz verdicts on recorded results: max CAX-BB and each isocentre size against its
tolerance, an axis not varied said so, and a set with an image lost or without a BB never judged."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pylinac.core.geometry import Point, Vector
from pylinac.winston_lutz import WinstonLutz2DResult, WinstonLutzResult

from linac_qa.analyses.criteria import Implausible
from linac_qa.model import Status
from tests.unit.analyses.recorded import verdict

SET = tuple(f"WL_A/RI.QA.WL_G{g:03d}.dcm" for g in (0, 90, 180, 270))


def image(x: float = 0.1, y: float = -0.1) -> Any:
    return WinstonLutz2DResult.model_construct(bb_location=Point(x, y), cax2bb_distance=math.hypot(x, y))


def wl(max_mm: float = 0.62, gantry_mm: float = 0.8, *, images: int = 4, bb_x: float = 0.1) -> Any:
    return WinstonLutzResult.model_construct(
        max_2d_cax_to_bb_mm=max_mm,
        median_2d_cax_to_bb_mm=0.4,
        gantry_3d_iso_diameter_mm=gantry_mm,
        coll_2d_iso_diameter_mm=0.0,
        couch_2d_iso_diameter_mm=0.0,
        num_total_images=images,
        num_gantry_images=images,
        num_coll_images=1,
        num_couch_images=0,
        bb_shift_vector=Vector(0.1, -0.2, 0.05),
        image_details=[image(x=bb_x), *(image() for _ in range(images - 1))],
    )


def test_a_set_within_tolerance_passes_and_says_which_axes_were_not_varied() -> None:
    v = verdict("winston-lutz", wl(), "", *SET)
    assert (v.status, v.judged) == (Status.PASSED, True)
    assert v.reason == (
        "max CAX-BB 0.62 mm <= 1.00 mm; gantry iso size 0.80 mm <= 1.00 mm; "
        "collimator iso size not judged (1 image); couch iso size not judged (0 images)"
    )
    assert v.metrics["bb_shift_y_mm"] == -0.2 and v.metrics["images"] == 4


def test_over_tolerance_fails_naming_what_failed() -> None:
    v = verdict("winston-lutz", wl(max_mm=1.42, gantry_mm=1.1), "", *SET)
    assert v.status is Status.FAILED
    assert v.reason.startswith("max CAX-BB 1.42 mm > 1.00 mm; gantry iso size 1.10 mm > 1.00 mm; ")


def test_tolerances_come_from_the_config() -> None:
    config = "winston-lutz:\n  tolerances:\n    max-cax-bb-distance-mm: 0.5\n"
    v = verdict("winston-lutz", wl(), config, *SET)
    assert v.status is Status.FAILED and v.reason.startswith("max CAX-BB 0.62 mm > 0.50 mm; ")


def test_no_gantry_iso_size_is_an_error_naming_the_key() -> None:
    v = verdict("winston-lutz", wl(gantry_mm=math.nan), "", *SET)
    assert v.status is Status.ERROR
    assert v.reason.startswith(
        "gantry iso size (winston-lutz.tolerances.gantry-iso-size-mm) not judged: pylinac gave no value"
    )


@pytest.mark.parametrize(
    ("results", "problem"),
    [
        (wl(images=3), "3 of 4 images analysed"),
        (wl(bb_x=math.nan), "no BB position in image(s) 1"),
    ],
)
def test_a_set_with_an_image_lost_or_without_a_bb_is_never_judged(results: Any, problem: str) -> None:
    with pytest.raises(Implausible) as err:
        verdict("winston-lutz", results, "", *SET)
    assert err.value.problems == [problem]
