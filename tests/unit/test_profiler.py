"""Sun Nuclear IC PROFILER files (.prm): recognised by their content, analysed with pylinac's
DeviceFieldAnalysis and judged with the field-analysis criteria. Real pylinac, no Prefect."""

from __future__ import annotations

from pathlib import Path

from linac_qa.config import Settings, load_settings
from linac_qa.execution.runner import run_job
from linac_qa.grouping.plan import group_context, plan
from linac_qa.intake.classify import classify_files
from linac_qa.model import AnalysisResult, Status
from linac_qa.records.ledger import Ledger
from linac_qa.run import Run
from linac_qa.testing.synthetic_profiler import profiler_field

SETTINGS = load_settings(text="general:\n  settle-seconds: 0\n")


def analyse(root: Path, settings: Settings = SETTINGS) -> list[AnalysisResult]:
    rels = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    work = plan(classify_files(root, rels, settings), settings, group_context(root, settings))
    assert not work.decided, [(r.files, r.reason) for r in work.decided]
    run = Run(root, settings, Ledger.open(root))
    return [run_job(run.job(acq)).result for acq in work.acquisitions]


def test_a_profiler_file_is_recognised_by_its_content_whatever_its_name(tmp_path: Path) -> None:
    profiler_field(tmp_path / "Open 20x20.prm")
    profiler_field(tmp_path / "monthly" / "export 3.txt")
    (tmp_path / "notes.prm").write_text("Version:\t25\r\nnot a measurement\r\n")  # a name is not enough
    by_path = {
        cf.path: cf
        for cf in classify_files(tmp_path, ["Open 20x20.prm", "monthly/export 3.txt", "notes.prm"], SETTINGS)
    }
    for rel in ("Open 20x20.prm", "monthly/export 3.txt"):
        assert by_path[rel].analysis == "field-analysis" and by_path[rel].status is None
        assert by_path[rel].reason == "Sun Nuclear Profiler data (IC PROFILER), by content"
    assert by_path["notes.prm"].status is Status.IGNORED
    assert by_path["notes.prm"].reason.startswith("not DICOM, an image or a zip")


def test_a_symmetric_field_passes_and_a_tilted_one_fails_on_symmetry(tmp_path: Path) -> None:
    profiler_field(tmp_path / "Open_A.prm")
    profiler_field(tmp_path / "Open_B.prm", tilt_percent=3.0)
    results = {r.files[0]: r for r in analyse(tmp_path)}
    good, tilted = results["Open_A.prm"], results["Open_B.prm"]
    assert (good.model, good.status) == ("DeviceFieldAnalysis", Status.PASSED), good.reason
    assert abs(float(good.metrics["symmetry_horizontal_percent"] or 0)) < 0.5
    assert float(good.metrics["flatness_horizontal_percent"] or 0) < 3.0
    assert (tilted.model, tilted.status) == ("DeviceFieldAnalysis", Status.FAILED), tilted.reason
    assert (
        "symmetry" in tilted.reason and abs(float(tilted.metrics["symmetry_horizontal_percent"] or 0)) > 2.0
    )
    assert (tmp_path / "Open_A_analysis.pdf").stat().st_size > 0
    assert sorted(Path(o).suffix for o in good.outputs) == [".json", ".pdf", ".png", ".txt"]


def test_fff_by_keyword_is_analysed_as_fff_and_its_flatness_not_judged(tmp_path: Path) -> None:
    profiler_field(tmp_path / "Open_6FFF.prm", energy="6 MV FFF")
    (result,) = analyse(tmp_path)
    assert result.status is Status.PASSED and result.metrics["fff"] is True
    assert "flatness not judged" in result.reason


def test_a_profiler_file_pylinac_cannot_read_is_an_error_saying_why(tmp_path: Path) -> None:
    whole = profiler_field(tmp_path / "whole.prm").read_text(encoding="cp437").splitlines()
    (tmp_path / "whole.prm").unlink()
    (tmp_path / "cut.prm").write_text("\r\n".join(whole[:60]) + "\r\n", encoding="cp437")  # no data rows
    (result,) = analyse(tmp_path)
    assert (result.analysis, result.status) == ("field-analysis", Status.ERROR)
    assert result.reason.startswith("ValueError: not in the layout pylinac reads"), result.reason
