"""The results table artifact and the per-analysis markdown (issue 15, point 2): the verdict first,
reasons a table cell can show, the whole reason in the markdown, report paths in full, keys per unit.
Through a real Prefect server: tests/e2e/test_prefect_visible.py."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from linac_qa.model import AnalysisResult, Status
from linac_qa.records.reporting import (
    SHORT_REASON,
    analysis_markdown,
    artifact_key,
    results_table,
    short_reason,
)
from linac_qa.records.summary import RunSummary

LONG = (
    "max error 1.21 mm > 0.50 mm (picket-fence.tolerance) at leaf 23 of picket 4, where the "
    "neighbouring leaves stay within 0.08 mm of their fitted picket; 0.98 mm at leaf 24 of picket 4; "
    "percent leaves passing 98.3 % < 100 %"
)


def _result(status: Status, name: str, reason: str, outputs: list[str]) -> AnalysisResult:
    return AnalysisResult(
        analysis="picket-fence",
        model="PicketFence",
        files=[name],
        status=status,
        reason=reason,
        outputs=outputs,
        unit="TrueBeam1",
        judged=True,
        warnings=["an earlier error retried: truncated"] if status is Status.FAILED else [],
    )


def test_a_short_reason_is_the_first_clause_cut_at_a_word() -> None:
    assert short_reason("max error 0.21 mm <= 0.50 mm") == "max error 0.21 mm <= 0.50 mm"
    assert short_reason("spokes 4 found; wobble 0.9 mm > 0.5 mm") == "spokes 4 found …"
    cut = short_reason(LONG)
    assert len(cut) <= SHORT_REASON + 1 and cut.endswith(" …") and LONG.startswith(cut[:-2])
    assert not cut[:-2].endswith(" ")


def test_the_table_has_the_verdict_first_and_full_report_paths(tmp_path: Path) -> None:
    outside = tmp_path.parent / "reports" / "RI.QA.PF_B_analysis.pdf"
    results = [
        _result(Status.PASSED, "RI.QA.PF_A.dcm", "max error 0.2 mm <= 0.5 mm", ["RI.QA.PF_A_analysis.pdf"]),
        _result(Status.FAILED, "RI.QA.PF_B.dcm", LONG, [str(outside), "RI.QA.PF_B_analysis.json"]),
    ]
    now = dt.datetime(2024, 3, 5, 2, 0, tzinfo=dt.UTC)
    summary = RunSummary(
        directory=str(tmp_path), unit="TrueBeam1", started=now, finished=now, results=results
    )
    failed, passed = results_table(summary)
    assert list(failed) == [
        "verdict",
        "analysis",
        "acquisition",
        "reason",
        "acquired",
        "unit",
        "report",
        "warnings",
    ]
    assert (failed["verdict"], passed["verdict"]) == ("FAILED", "PASSED")
    assert failed["reason"] == short_reason(LONG) and failed["report"] == str(outside)
    assert failed["warnings"] == "an earlier error retried: truncated" and passed["warnings"] == ""
    assert passed["report"] == str(tmp_path / "RI.QA.PF_A_analysis.pdf")
    markdown = analysis_markdown("picket-fence", results, tmp_path)
    assert LONG in markdown and "warning: an earlier error retried: truncated" in markdown
    assert markdown.index("**FAILED**") < markdown.index("**PASSED**")
    assert str(tmp_path / "RI.QA.PF_A_analysis.pdf") in markdown


def test_artifact_keys_are_per_unit() -> None:
    assert artifact_key("picket-fence", "TrueBeam1") == "picket-fence-truebeam1"
    assert artifact_key("qa-results", "Linac 2 (old)") == "qa-results-linac-2-old"
    assert artifact_key("picket-fence", "TrueBeam1") != artifact_key("picket-fence", "TrueBeam2")
