"""RT images that nothing names are recognised by what they show (issue 12, point 4), and only when
the answer is clear: ambiguous images stay ignored, with what was seen."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pylinac.core.image_generator import (
    AS500Image,
    FilteredFieldLayer,
    GaussianFilterLayer,
    PerfectBBLayer,
)
from pylinac.core.image_generator.layers import Layer

from linac_qa.config import load_settings
from linac_qa.grouping.plan import group_context, plan
from linac_qa.intake.classify import classify_file, classify_files
from linac_qa.intake.recognise import Kind, recognise
from linac_qa.model import Status
from linac_qa.testing.synthetic import (
    DEFAULT_WHEN,
    SeededNoiseLayer,
    WinstonLutzSession,
    light_rad,
    open_field,
    picket_fence,
    save_unnamed,
    stamp_rt_image,
    starshot,
    truncated_dicom,
)
from linac_qa.testing.synthetic_vmat import vmat_pair

# The small AS500 panel where a test allows it; pylinac's VMAT generator here draws on the AS1000.
RECOGNISABLE: dict[str, tuple[Kind, str]] = {
    "picket fence": (Kind.PICKET_FENCE, "picket fence, 11 strips 20 mm apart"),
    "winston-lutz": (Kind.WINSTON_LUTZ, "Winston-Lutz, 20 x 20 mm field with a BB"),
    "starshot": (Kind.STARSHOT, "starshot, 8 spokes"),
    "open field": (Kind.OPEN_FIELD, "open field 150 x 150 mm"),
    "FFF open field": (Kind.OPEN_FIELD, "open field 149 x 149 mm, filter-free"),  # at half its peak
    "light/rad": (Kind.LIGHT_RAD, "light/rad, 100 x 100 mm field with 4 BB markers"),
    "DRGS DMLC": (Kind.VMAT_DMLC, "VMAT DMLC, 7 segments (DRGS)"),
    "DRGS open": (Kind.OPEN_FIELD, "open field"),
    "DRMLC DMLC": (Kind.VMAT_DMLC, "VMAT DMLC, 4 segments (DRMLC)"),
}


def _layers(*layers: Layer) -> Callable[[Path], Path]:
    """An AS500 image of `layers` (blurred, with noise), with an RT Image header."""

    def write(path: Path) -> Path:
        sim = AS500Image(sid=1000)
        for layer in (*layers, GaussianFilterLayer(sigma_mm=1.0), SeededNoiseLayer(np.random.default_rng(7))):
            sim.add_layer(layer)
        ds = stamp_rt_image(
            sim.as_dicom(), machine="TrueBeam1", when=DEFAULT_WHEN, key=path.name, label="x", description="x"
        )
        ds.save_as(path, write_like_original=False)
        return path

    return write


AMBIGUOUS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "blank": (_layers(), "no field"),
    "two fields": (
        _layers(
            FilteredFieldLayer(field_size_mm=(30, 30), cax_offset_mm=(0, -40)),
            FilteredFieldLayer(field_size_mm=(30, 30), cax_offset_mm=(0, 40)),
        ),
        "2 bright regions",
    ),
    "small field without a BB": (_layers(FilteredFieldLayer(field_size_mm=(20, 20))), "one bright region"),
    "small field, dark spot at its edge": (
        _layers(
            FilteredFieldLayer(field_size_mm=(20, 20)), PerfectBBLayer(bb_size_mm=5, cax_offset_mm=(0, 8))
        ),
        "one bright region",
    ),
    "three spots": (
        _layers(
            *(
                PerfectBBLayer(bb_size_mm=10, cax_offset_mm=c, alpha=0.8)
                for c in ((30, 30), (-30, 30), (0, -40))
            )
        ),
        "3 bright regions",
    ),
    "field with a phantom's holes": (
        _layers(
            FilteredFieldLayer(field_size_mm=(150, 150)),
            *(
                PerfectBBLayer(bb_size_mm=4, cax_offset_mm=(x, y), alpha=0.03)
                for x in (-40, 0, 40)
                for y in (-30, 30)
            ),
        ),
        "one bright region of 150 x 150 mm",
    ),
    "a field inside a field": (
        _layers(
            FilteredFieldLayer(field_size_mm=(150, 150), alpha=0.5),
            FilteredFieldLayer(field_size_mm=(60, 60), alpha=0.4),
        ),
        "one bright region",
    ),
    "three strips": (
        _layers(*(FilteredFieldLayer(field_size_mm=(200, 3), cax_offset_mm=(0, x)) for x in (-20, 0, 20))),
        "3 bright regions",
    ),
}


@pytest.fixture(scope="module")
def unnamed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each recognisable and each ambiguous image, every name and label removed, as RI.<uid>.dcm."""
    work = tmp_path_factory.mktemp("named")
    folder = tmp_path_factory.mktemp("unnamed")
    drgs_open, drgs = vmat_pair(work / "drgs", test="drgs")
    _, drmlc = vmat_pair(work / "drmlc", test="drmlc")
    wl_name, wl = WinstonLutzSession(imager="AS500").images("wl")[0]
    wl.save_as(work / wl_name, write_like_original=False)
    made = {
        "picket fence": picket_fence(work / "pf.dcm", imager="AS500"),
        "winston-lutz": work / wl_name,
        "starshot": starshot(work / "star.dcm", imager="AS500"),
        "open field": open_field(work / "open.dcm", imager="AS500"),
        "FFF open field": open_field(work / "fff.dcm", fff=True, imager="AS500"),
        "light/rad": light_rad(work / "lightrad.dcm", imager="AS500"),
        "DRGS DMLC": drgs,
        "DRGS open": drgs_open,
        "DRMLC DMLC": drmlc,
        **{what: write(work / f"{i}.dcm") for i, (what, (write, _)) in enumerate(AMBIGUOUS.items())},
    }
    return {what: save_unnamed(pydicom.dcmread(path), folder) for what, path in made.items()}


@pytest.mark.parametrize("what", RECOGNISABLE)
def test_an_unnamed_image_is_recognised_by_what_it_shows(unnamed: dict[str, Path], what: str) -> None:
    kind, detail = RECOGNISABLE[what]
    seen = recognise(unnamed[what])
    assert (seen.kind, seen.detail[: len(detail)]) == (kind, detail), seen
    assert seen.confidence >= 0.8 and seen.margin >= 0.5


@pytest.mark.parametrize("what", AMBIGUOUS)
def test_an_ambiguous_image_is_not_recognised_and_says_what_was_seen(
    unnamed: dict[str, Path], what: str
) -> None:
    seen = recognise(unnamed[what])
    assert seen.kind is None and seen.section is None, seen
    assert seen.detail.startswith(AMBIGUOUS[what][1]), seen.detail


def test_noise_is_no_field(unnamed: dict[str, Path], tmp_path: Path) -> None:
    ds = pydicom.dcmread(unnamed["blank"])
    ds.PixelData = (
        np.random.default_rng(0).integers(0, 4000, (ds.Rows, ds.Columns), dtype=np.uint16).tobytes()
    )
    ds.save_as(tmp_path / "noise.dcm", write_like_original=False)
    seen = recognise(tmp_path / "noise.dcm")
    assert (seen.kind, seen.detail) == (None, "no field (a blank or noise image)")


def test_radiation_dark_in_the_pixels_is_recognised_as_well(unnamed: dict[str, Path], tmp_path: Path) -> None:
    ds = pydicom.dcmread(unnamed["picket fence"])
    ds.PixelData = (65535 - ds.pixel_array).astype(np.uint16).tobytes()
    inverted = tmp_path / "inverted.dcm"
    ds.save_as(inverted, write_like_original=False)
    assert recognise(inverted).kind is Kind.PICKET_FENCE


def test_implicit_vr_without_a_preamble_is_read(unnamed: dict[str, Path], tmp_path: Path) -> None:
    ds = pydicom.dcmread(unnamed["winston-lutz"])
    ds.file_meta = FileMetaDataset()
    ds.is_implicit_VR, ds.is_little_endian, ds.preamble = True, True, None
    bare = tmp_path / "RI.bare.dcm"
    pydicom.dcmwrite(bare, ds, write_like_original=True)
    assert bare.read_bytes()[128:132] != b"DICM"
    assert recognise(bare).kind is Kind.WINSTON_LUTZ


def test_without_a_pixel_size_sizes_are_assumed_and_said(unnamed: dict[str, Path], tmp_path: Path) -> None:
    ds = pydicom.dcmread(unnamed["picket fence"])
    del ds.ImagePlanePixelSpacing
    ds.save_as(tmp_path / "nospacing.dcm", write_like_original=False)
    seen = recognise(tmp_path / "nospacing.dcm")
    assert seen.kind is Kind.PICKET_FENCE and seen.detail.endswith("(pixel size assumed)")


def test_a_damaged_file_is_not_recognised_and_does_not_raise(
    unnamed: dict[str, Path], tmp_path: Path
) -> None:
    cut = truncated_dicom(unnamed["open field"], tmp_path / "cut.dcm")
    seen = recognise(cut)
    assert seen.kind is None and seen.detail.startswith("pixels cannot be read")
    assert recognise(tmp_path / "missing.dcm").kind is None


# --------------------------------------------------------------------------- classification
def test_classification_routes_a_recognised_image_and_says_why(unnamed: dict[str, Path]) -> None:
    path = unnamed["picket fence"]
    cf = classify_file(path.parent, path.name, load_settings())
    assert (cf.analysis, cf.status, cf.by_content) == ("picket-fence", None, True)
    assert cf.reason == "recognised by content: picket fence, 11 strips 20 mm apart"


@pytest.mark.parametrize(
    ("what", "section", "variant"),
    [
        ("DRGS DMLC", "vmat", {"test": "DRGS"}),
        ("DRMLC DMLC", "vmat", {"test": "DRMLC"}),
        ("FFF open field", "field-analysis", {"fff": True}),
        ("open field", "field-analysis", {}),
    ],
)
def test_the_variant_the_image_shows_goes_with_it(
    unnamed: dict[str, Path], what: str, section: str, variant: dict[str, object]
) -> None:
    path = unnamed[what]
    cf = classify_file(path.parent, path.name, load_settings())
    assert (cf.analysis, cf.variant, cf.by_content) == (section, variant, True)


def test_an_unnamed_vmat_pair_is_one_acquisition_of_the_test_its_segments_make(tmp_path: Path) -> None:
    export = tmp_path / "export"
    for image in vmat_pair(tmp_path / "named", test="drmlc"):
        save_unnamed(pydicom.dcmread(image), export)
    rels = sorted(p.name for p in export.iterdir())
    settings = load_settings(text="general: {settle-seconds: 0}")
    ctx = group_context(export, settings, now=time.time())
    work = plan(classify_files(export, rels, settings), settings, ctx)
    (acq,) = work.acquisitions
    assert (acq.analysis, sorted(acq.files), acq.variant.get("test")) == ("vmat", rels, "DRMLC")
    assert not work.decided


def test_classification_ignores_an_image_it_does_not_recognise_with_what_it_saw(
    unnamed: dict[str, Path],
) -> None:
    path = unnamed["two fields"]
    cf = classify_file(path.parent, path.name, load_settings())
    assert (cf.analysis, cf.status) == (None, Status.IGNORED)
    assert cf.reason.startswith("RT image not recognised: 2 bright regions")


def test_a_recognised_image_of_a_disabled_analysis_is_ignored(unnamed: dict[str, Path]) -> None:
    path = unnamed["starshot"]
    cf = classify_file(path.parent, path.name, load_settings(text="starshot: {enabled: false}"))
    assert (cf.analysis, cf.status) == (None, Status.IGNORED)
    assert cf.reason == "RT image recognised by content (starshot, 8 spokes), but starshot is disabled"


def test_recognition_by_content_can_be_switched_off(unnamed: dict[str, Path]) -> None:
    path = unnamed["picket fence"]
    cf = classify_file(path.parent, path.name, load_settings(text="general: {recognise-by-content: false}"))
    assert (cf.analysis, cf.status) == (None, Status.IGNORED)
    assert "no QA keyword" in cf.reason


def test_a_keyword_still_decides_before_the_pixels(tmp_path: Path) -> None:
    # An open field named as a starshot goes where its name says (and fails there, visibly).
    open_field(tmp_path / "RI.QA.Starshot.dcm", imager="AS500", label="Starshot", description="Starshot")
    cf = classify_file(tmp_path, "RI.QA.Starshot.dcm", load_settings())
    assert (cf.analysis, cf.by_content) == ("starshot", False)
