"""The pieces the flow orchestrates, without Prefect: one plan_directory, the named results, the
summary the command line prints and exits with, the run taking its plan. (The pools and their Stop:
tests/e2e/test_worker_pool.py.)"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from linac_qa.config import load_settings
from linac_qa.grouping.plan import group_context, plan, plan_directory
from linac_qa.intake.classify import classify_files, in_batches
from linac_qa.intake.discovery import discover
from linac_qa.model import Acquisition, AnalysisResult, ClassifiedFile, Status
from linac_qa.records.ledger import Ledger
from linac_qa.records.outputs import temporary_name
from linac_qa.records.summary import RunSummary
from linac_qa.run import Run
from linac_qa.testing import synthetic

SETTINGS = load_settings(text="general:\n  settle-seconds: 0\n")


def qa_folder(root: Path) -> Path:
    synthetic.starshot(root / "RI.QA.Starshot_A.dcm", wobble_mm=0.1)
    synthetic.png_image(root / "team photo.png")
    (root / ".hidden").write_text("not looked at")
    return root


def test_plan_directory_is_discover_classify_plan(tmp_path: Path) -> None:
    root = qa_folder(tmp_path / "qa")
    planned = plan_directory(root, SETTINGS, {})
    found = discover(root, SETTINGS, {})
    by_hand = plan(
        [*found.decided(), *classify_files(root, [s.path for s in found.new], SETTINGS)],
        SETTINGS,
        group_context(root, SETTINGS),
    )
    assert planned.found.new == found.new
    assert planned.plan.acquisitions == by_hand.acquisitions
    assert planned.plan.decided == by_hand.decided
    assert [a.name for a in planned.plan.acquisitions] == ["RI.QA.Starshot_A.dcm"]
    assert [r.files for r in planned.plan.decided] == [["team photo.png"]]
    assert planned.skipped(stopped=2) == {"hidden": 1, "stopped": 2}


def test_plan_directory_takes_its_steps_from_the_caller(tmp_path: Path) -> None:
    """As the flow gives it its Prefect tasks: every new file goes through the given classify."""
    root = qa_folder(tmp_path / "qa")
    seen: list[list[str]] = []

    def classify(directory: Path, paths: list[str], settings: object) -> list[ClassifiedFile]:
        seen.append(paths)
        return classify_files(directory, paths, SETTINGS)

    planned = plan_directory(root, SETTINGS, {}, classify=classify)
    assert seen == [["RI.QA.Starshot_A.dcm", "team photo.png"]]
    assert len(planned.plan.acquisitions) == 1


def test_classification_batches() -> None:
    assert in_batches([str(i) for i in range(5)], 2) == [["0", "1"], ["2", "3"], ["4"]]
    assert in_batches([], 2) == []


def test_named_results() -> None:
    acq = Acquisition(
        analysis="starshot",
        files=("a.dcm",),
        name="a.dcm",
        output_stem="a",
        machine="TB1",
        acquired=dt.datetime(2024, 3, 4, 7),
        warnings=("w",),
    )
    error = AnalysisResult.acquisition_error(acq, None, "worker died")
    assert (error.status, error.reason, error.unit, error.files, error.warnings) == (
        Status.ERROR,
        "worker died",
        "TB1",
        ["a.dcm"],
        ["w"],
    )
    assert AnalysisResult.acquisition_error(acq, "TrueBeam1").unit == "TrueBeam1"
    ignored = AnalysisResult.ignored(None, ["x.txt"], "not QA data")
    assert (ignored.status, ignored.model, ignored.files) == (Status.IGNORED, None, ["x.txt"])
    assert AnalysisResult.error("vmat", ["o.dcm"], "no partner").status is Status.ERROR
    cf = ClassifiedFile(path="b.dcm", status=Status.IGNORED, reason="a plan")
    assert AnalysisResult.classified(cf) == AnalysisResult.ignored(None, ["b.dcm"], "a plan")


def summary_of(*statuses: Status, skipped: int = 0) -> RunSummary:
    now = dt.datetime(2024, 3, 4, 7, tzinfo=dt.UTC)
    results = [AnalysisResult.error("starshot", [f"{i}.dcm"], "x") for i, _ in enumerate(statuses)]
    for result, status in zip(results, statuses, strict=True):
        result.status, result.judged = status, True
    return RunSummary(
        directory="/qa", unit=None, started=now, finished=now, results=results, skipped={"done": skipped}
    )


def test_the_exit_status_and_the_headline_come_from_the_summary() -> None:
    assert summary_of(Status.PASSED).exit_code == 0
    assert summary_of(Status.PASSED, Status.FAILED).exit_code == 1
    assert summary_of(Status.IGNORED, Status.ERROR).exit_code == 1
    assert summary_of().model_copy(update={"error": "no API"}).exit_code == 4
    assert summary_of(Status.PASSED).headline() == "1 passed"
    assert summary_of(Status.PASSED).headline(zero_skipped=True) == "1 passed; 0 skipped"
    assert summary_of(skipped=3).headline() == "nothing new; 3 skipped (3 already analysed)"


def test_a_run_takes_its_plan(tmp_path: Path) -> None:
    root = qa_folder(tmp_path / "qa")
    stale = temporary_name(root / "RI.QA.Starshot_A_analysis.pdf")
    stale.write_bytes(b"left by a killed run")
    planned = plan_directory(root, SETTINGS, {})
    assert planned.found.stale_temporaries == [stale]
    ledger = Ledger.open(root)
    try:
        run = Run(root, SETTINGS, ledger)
        to_analyse = run.start(planned)
        assert [a.name for a in to_analyse] == ["RI.QA.Starshot_A.dcm"]
        assert [r.files for r in run.results] == [["team photo.png"]]  # recorded at once
        assert not stale.exists()
        assert set(ledger.known()) == {"team photo.png"}
    finally:
        ledger.close()
