"""Every output says what it is (issue 15, points 1 and 6): the PDF's first page is ours (the verdict
large and coloured, the reason with its numbers, the provenance in a table that wraps), then
pylinac's pages unchanged; the PNG has a title band; the `.txt` starts with the same header and
names no absolute path.

Each analysis type of the registry is run once through the worker job on a small generated
acquisition, and its PDF's first page is rendered with pypdfium2: every text box of ours lies inside
the page and none lies over another.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
from PIL import Image
from pypdf import PdfReader

from linac_qa.analyses import REGISTRY
from linac_qa.analyses.base import Inputs
from linac_qa.config import load_settings
from linac_qa.execution.runner import _relative_text, run_job
from linac_qa.grouping.plan import plan_directory
from linac_qa.model import AnalysisResult
from linac_qa.records.ledger import Ledger
from linac_qa.records.report_page import ReportFacts, first_page, title_line, titled_png
from linac_qa.run import Run
from linac_qa.testing import (
    synthetic,
    synthetic_ct,
    synthetic_logs,
    synthetic_mpc,
    synthetic_planar,
    synthetic_vmat,
)

QUICK = "general:\n  settle-seconds: 0\n  unit: TrueBeam1\n"
MARGIN_PT = 28.0  # 1 cm: no text of ours nearer the page's edge
PYLINAC_FOOTER = "Generated with Pylinac"


@dataclass(frozen=True)
class Case:
    make: Callable[[Path], Any]
    config: str = ""
    verdict: str = "PASS"
    # What marks the analysis's own pages after ours: pylinac's footer, or MPC's chart of Varian's rows.
    footer: str = PYLINAC_FOOTER


# One small acquisition per analysis type. A type added to the registry fails here until it has one.
CASES: dict[str, Case] = {
    "picket-fence": Case(
        lambda r: synthetic.picket_fence(r / "RI.QA.PF_B.dcm", leaf_error_mm=1.2), verdict="FAIL"
    ),
    # A zip (extracted to a temporary folder that pylinac's text must not name), failing on its
    # couch iso size: the case of the issue, where the failing value was hidden under a plot.
    "winston-lutz": Case(
        lambda r: synthetic.winston_lutz_zip(
            r / "WL_TrueBeam1_B.zip", synthetic.WinstonLutzSession(offset_mm=(0.2, -0.1, 0.15))
        ),
        "winston-lutz:\n  tolerances:\n    couch-iso-size-mm: 0.01\n",
        "FAIL",
    ),
    "starshot": Case(lambda r: synthetic.starshot(r / "RI.QA.Starshot_A.dcm")),
    "field-analysis": Case(lambda r: synthetic.open_field(r / "RI.QA.OpenField_6X.dcm")),
    "light-rad": Case(lambda r: synthetic.light_rad(r / "RI.QA.LightRad.dcm")),
    "cbct": Case(lambda r: synthetic_ct.catphan504_series(r / "CBCT_CatPhan504")),
    "vmat": Case(lambda r: synthetic_vmat.vmat_pair(r / "VMAT_A")),
    "planar-imaging": Case(lambda r: synthetic_planar.qc3_image(r / "RI.QA.QC3.dcm"), verdict="NOT JUDGED"),
    "machine-logs": Case(lambda r: synthetic_logs.trajectory_log(r / "QA_Plan_SW10_20240304083400.bin")),
    "mpc": Case(
        lambda r: synthetic_mpc.check_folder(
            r / "TDS",
            "BeamCheckTemplate6x",
            dt.datetime(2024, 3, 4, 7, 10),
            fail={"BeamGroup/BeamCenterShift [mm]": 0.61},
            images=0,
        ),
        verdict="FAIL",
        footer="Varian MPC Results.csv",
    ),
}


@dataclass(frozen=True)
class Report:
    root: Path
    result: AnalysisResult
    case: Case

    def output(self, ext: str) -> Path:
        return self.root / next(o for o in self.result.outputs if o.endswith(ext))


@pytest.fixture(scope="module", params=sorted(REGISTRY))
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Report:
    section = request.param
    assert section in CASES, f"add a small generated acquisition for {section!r} to CASES"
    case = CASES[section]
    root = tmp_path_factory.mktemp(section)
    case.make(root)
    settings = load_settings(text=QUICK + case.config)
    [acq] = plan_directory(root, settings, {}).plan.acquisitions
    result = run_job(Run(root, settings, Ledger.open(root)).job(acq)).result
    assert result.outputs, result.reason
    return Report(root, result, case)


# --------------------------------------------------------------------------- the PDF


def text_boxes(page: pdfium.PdfPage) -> list[tuple[float, float, float, float, str]]:
    """(left, bottom, right, top, text) of every text box on the page, in points."""
    textpage = page.get_textpage()
    boxes = []
    for i in range(textpage.count_rects()):
        left, bottom, right, top = textpage.get_rect(i)
        boxes.append((left, bottom, right, top, textpage.get_text_bounded(left, bottom, right, top)))
    return boxes


def assert_laid_out(page: pdfium.PdfPage) -> str:
    """Every text box inside the page's margins, no two overlapping; returns the page's text."""
    width, height = page.get_size()
    boxes = text_boxes(page)
    assert boxes
    for left, bottom, right, top, text in boxes:
        assert left >= MARGIN_PT and right <= width - MARGIN_PT, (text, left, right)
        assert bottom >= MARGIN_PT and top <= height - MARGIN_PT, (text, bottom, top)
    slack = 0.5  # glyph boxes of neighbouring lines may touch
    for n, a in enumerate(boxes):
        for b in boxes[n + 1 :]:
            apart = (
                a[2] - slack <= b[0] or b[2] - slack <= a[0] or a[3] - slack <= b[1] or b[3] - slack <= a[1]
            )
            assert apart, f"{a[4]!r} lies over {b[4]!r}"
    image = page.render(scale=1).to_pil()  # it renders, and not blank
    assert abs(image.width - width) <= 1 and abs(image.height - height) <= 1
    assert image.convert("L").getextrema()[0] < 100
    return str(page.get_textpage().get_text_range())


def squeezed(text: str) -> str:
    return "".join(text.split())


def numbers(text: str) -> list[str]:
    return re.findall(r"\d+\.\d+", text)


def test_the_first_page_is_ours_and_reads_right(report: Report) -> None:
    path = report.output(".pdf")
    result = report.result
    doc = pdfium.PdfDocument(path)
    text = assert_laid_out(doc[0])
    flat = squeezed(text)  # a long name or hash wraps: compared without the line breaks
    assert report.case.verdict.replace(" ", "") in flat
    for number in numbers(result.reason):
        assert number in flat, (number, result.reason)
    ours = json.loads(report.output(".json").read_text(encoding="utf-8"))["linac-qa-flows"]
    for value in (ours["acquisition"], ours["unit"], ours["provenance"]["inputs"]["combined_sha256"]):
        assert squeezed(value) in flat, value
    assert report.case.footer not in text
    # pylinac's pages follow, unchanged: each carries its footer, and nothing of ours is drawn there
    theirs = [doc[n].get_textpage().get_text_range() for n in range(1, len(doc))]
    assert theirs and all(report.case.footer in t for t in theirs)
    assert not any("Notes:" in t or "Metadata:" in t for t in theirs)
    meta = PdfReader(path).metadata
    assert meta is not None
    assert meta.title == f"{result.analysis} QA report: {ours['acquisition']} — {report.case.verdict}"
    assert meta.author == "linac-qa-flows"
    assert meta.subject == f"{report.case.verdict}: {result.reason}"


# --------------------------------------------------------------------------- the PNG and the TXT


def test_the_png_has_a_title_band(report: Report) -> None:
    with Image.open(report.output(".png")) as png:
        grey = png.convert("L")
    first_row = grey.crop((0, 0, grey.width, 1))
    assert first_row.getextrema() == (255, 255)  # the band is white above its text
    band = grey.crop((0, 0, grey.width, max(14, grey.width // 40)))
    assert band.getextrema()[0] < 100  # and holds dark text


def test_the_txt_starts_with_the_header_and_names_no_absolute_path(report: Report) -> None:
    text = report.output(".txt").read_text(encoding="utf-8")
    result = report.result
    first, blank, verdict, reason = text.splitlines()[:4]
    assert first.startswith(f"{result.analysis} QA: ") and first.endswith(f" · {report.case.verdict}")
    assert (blank, verdict, reason) == ("", f"Verdict: {report.case.verdict}", result.reason)
    assert len(text.splitlines()) > 5  # pylinac's results follow
    assert str(report.root) not in text and "/tmp" not in text


# --------------------------------------------------------------------------- long contents


def facts(**changes: Any) -> ReportFacts:
    base: dict[str, Any] = {
        "analysis": "winston-lutz",
        "model": "WinstonLutz",
        "acquisition": "WL_TrueBeam1_20240304_B.zip",
        "unit": "truebeam1",
        "machine": "TrueBeam1",
        "acquired": dt.datetime(2024, 3, 4, 7, 45, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        "files": ("WL_TrueBeam1_20240304_B.zip",),
        "verdict": "FAIL",
        "reason": "couch iso size 2.19 mm > 1.00 mm",
        "metrics": {"couch_iso_size_mm": 2.192, "images": 6, "collimator_iso_size_mm": None},
        "provenance": {
            "inputs": {"count": 1, "combined_sha256": "ab" * 32},
            "linac-qa-flows": "0.1.0",
            "pylinac": "3.49.0",
            "config_hash": "fce705b4434b2d6a",
            "analysed": "2024-03-04T08:00:00+00:00",
        },
    }
    return ReportFacts(**{**base, **changes})


def rendered(page_facts: ReportFacts) -> pdfium.PdfDocument:
    return pdfium.PdfDocument(first_page(page_facts, pylinac_pages=3))


def test_a_reason_of_600_characters_wraps_and_stays_on_the_page() -> None:
    clauses = [f"criterion number {n} measured {n + 0.25:.2f} mm > {n / 10:.2f} mm" for n in range(14)]
    reason = "; ".join(clauses) + "; " + "an-unbroken-token-" * 6
    assert len(reason) >= 600
    doc = rendered(facts(reason=reason))
    assert len(doc) == 1
    flat = squeezed(assert_laid_out(doc[0]))
    for number in numbers(reason):
        assert number in flat


def test_a_long_list_of_files_ends_with_how_many_more_on_one_page() -> None:
    files = tuple(f"CBCT_CatPhan504/CT.1.2.826.0.1.3680043.8.498.{n:040d}.dcm" for n in range(300))
    many_metrics = {f"metric_{n}": n * 1.5 for n in range(40)}
    doc = rendered(facts(files=files, metrics=many_metrics))
    assert len(doc) == 1
    flat = squeezed(assert_laid_out(doc[0]))
    assert "and288more" in flat and "Sourcefiles(300)" in flat


def test_the_time_zone_of_the_acquisition_is_shown_when_known() -> None:
    assert title_line(facts()) == "WL_TrueBeam1_20240304_B.zip · truebeam1 · 2024-03-04 07:45+01:00 · FAIL"
    assert "2024-03-04 07:45 ·" in title_line(facts(acquired=dt.datetime(2024, 3, 4, 7, 45)))


def test_the_title_band_is_added_above_the_picture_unchanged() -> None:
    picture = Image.new("RGB", (640, 480), "navy")
    raw = io.BytesIO()
    picture.save(raw, format="PNG")
    with Image.open(io.BytesIO(titled_png(raw.getvalue(), title_line(facts())))) as titled:
        band = titled.height - picture.height
        assert titled.width == picture.width and band > 0
        assert titled.convert("L").crop((0, 0, titled.width, band)).getextrema() == (0, 255)
        assert titled.crop((0, band, titled.width, titled.height)).convert("RGB").getcolors() == [
            (640 * 480, (0, 0, 128))
        ]


def test_the_txt_names_inputs_relative_to_the_directory_and_a_zips_members_under_its_name(
    tmp_path: Path,
) -> None:
    extracted = tmp_path / "scratch" / "zip-1234"
    inputs = Inputs([extracted / "img1.dcm"], zip_path=tmp_path / "sub" / "WL_A.zip", extracted_to=extracted)
    text = "\n".join(
        (
            f"File: {tmp_path}/sub/PF.dcm",
            f"Image: {extracted}/img1.dcm",
            f"Folder: {extracted}",
            f"Other: {tmp_path}x/a",
        )
    )
    assert _relative_text(text, tmp_path, inputs).splitlines() == [
        "File: sub/PF.dcm",
        "Image: sub/WL_A.zip/img1.dcm",
        "Folder: sub/WL_A.zip",
        f"Other: {tmp_path}x/a",  # another folder whose name merely starts alike
    ]


def test_the_png_is_still_the_picture_the_report_drew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A picket fence takes seconds to draw: its PNG is kept as publish_pdf draws it, not drawn again."""
    from pylinac import PicketFence

    draws: list[object] = []
    original = PicketFence.save_analyzed_image

    def counted(self: PicketFence, *args: Any, **kwargs: Any) -> Any:
        draws.append(args[0] if args else kwargs.get("filename"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PicketFence, "save_analyzed_image", counted)
    synthetic.picket_fence(tmp_path / "RI.QA.PF_A.dcm")
    settings = load_settings(text=QUICK)
    [acq] = plan_directory(tmp_path, settings, {}).plan.acquisitions
    result = run_job(Run(tmp_path, settings, Ledger.open(tmp_path)).job(acq)).result
    assert result.status == "passed" and len(draws) == 1 and isinstance(draws[0], io.BytesIO)
    with Image.open(tmp_path / "RI.QA.PF_A_analysis.png") as png, Image.open(draws[0]) as drawn:
        assert png.width == drawn.width and png.height > drawn.height


def test_a_report_that_cannot_be_made_leaves_no_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pylinac's pages are made in memory and ours after them: a fault there (injected) leaves the
    folder as it was, with the error said."""
    from linac_qa.records import report_page

    def broken(facts: ReportFacts, pylinac_pages: int) -> bytes:
        raise OSError("disk full")

    monkeypatch.setattr(report_page, "first_page", broken)
    image = synthetic.starshot(tmp_path / "RI.QA.Starshot_A.dcm")
    settings = load_settings(text=QUICK)
    [acq] = plan_directory(tmp_path, settings, {}).plan.acquisitions
    result = run_job(Run(tmp_path, settings, Ledger.open(tmp_path)).job(acq)).result
    assert result.status == "error" and "disk full" in result.reason and result.outputs == []
    assert [p.name for p in tmp_path.iterdir() if p.name != ".linac-qa"] == [image.name]
