"""Tables and text for people: the results table artifact, per-analysis markdown, terminal lines."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from linac_qa.model import AnalysisResult, Status
from linac_qa.records.summary import RunSummary, verdict

MARKS = {Status.PASSED: "PASS", Status.FAILED: "FAIL", Status.ERROR: "ERROR", Status.IGNORED: "ignored"}
NOT_JUDGED = "NOT JUDGED"
SHORT_REASON = 120  # characters of a reason in the results table: one line or two at 1,600 px


def mark(status: Status, judged: bool) -> str:
    """The verdict word for people: a pass on which no criterion was judged is not shown as one."""
    return NOT_JUDGED if status is Status.PASSED and not judged else MARKS[status]


def artifact_key(name: str, unit: str | None) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    raw = f"{name}-{unit}" if unit else name
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", raw.lower())).strip("-") or "results"


def acquisition_label(result: AnalysisResult) -> str:
    if not result.files:
        return "?"
    first = result.files[0]
    return first if len(result.files) == 1 else f"{first.rsplit('/', 1)[0]}/ ({len(result.files)} files)"


def results_table(summary: RunSummary) -> list[dict[str, str]]:
    """One row per acquisition, the verdict first, problems first; reasons and warnings shortened to
    what a table cell shows (the whole of them is in the analysis's markdown artifact)."""
    directory = Path(summary.directory)
    return [
        {
            "verdict": verdict(r),
            "analysis": r.analysis or "",
            "acquisition": acquisition_label(r),
            "reason": short_reason(r.reason),
            "acquired": r.acquired.strftime("%Y-%m-%d %H:%M") if r.acquired else "",
            "unit": r.unit or "",
            "report": str(report_path(r, directory) or ""),
            "warnings": short_reason("; ".join(r.warnings)),
        }
        for r in problems_first(summary.results)
    ]


def short_reason(reason: str, limit: int = SHORT_REASON) -> str:
    """The reason's first clause (clauses are joined by "; "), cut at a word within `limit`
    characters; an ellipsis says that there is more."""
    first, _, rest = reason.partition("; ")
    if len(first) > limit:
        return first[: limit - 1].rsplit(" ", 1)[0] + " …"
    return f"{first} …" if rest else first


def report_path(result: AnalysisResult, directory: Path) -> Path | None:
    """The PDF among the outputs; outputs are relative to the directory when inside it."""
    pdf = next((o for o in result.outputs if o.lower().endswith(".pdf")), None)
    if pdf is None:
        return None
    path = Path(pdf)
    return path if path.is_absolute() else directory / path


def problems_first(results: Iterable[AnalysisResult]) -> list[AnalysisResult]:
    """Failures, errors, results not judged, passes, ignored files."""
    order = {Status.FAILED: 0, Status.ERROR: 1, Status.PASSED: 3, Status.IGNORED: 4}
    return sorted(results, key=lambda r: 2 if r.not_judged else order[r.status])


def analysis_markdown(section: str, results: list[AnalysisResult], directory: Path) -> str:
    """Every result of one analysis type in full: verdict, whole reason, warnings, report, metrics."""
    lines = [f"# {section}", "", "| acquisition | verdict | reason | report |", "|---|---|---|---|"]
    for r in problems_first(results):
        report = str(report_path(r, directory) or "")
        reason = "; ".join([r.reason, *(f"warning: {w}" for w in r.warnings)])
        lines.append(
            f"| {markdown_cell(acquisition_label(r))} | **{verdict(r)}** |"
            f" {markdown_cell(reason)} | {markdown_cell(report)} |"
        )
        for key, value in r.metrics.items():
            if value is not None:
                lines.append(f"|  | {key} | {value} |  |")
    return "\n".join(lines)


def verdict_line(result: AnalysisResult) -> str:
    warn = f"  [warning: {'; '.join(result.warnings)}]" if result.warnings else ""
    what = f"{result.analysis or '-':<15} {acquisition_label(result)}"
    return f"{mark(result.status, result.judged):<10} {what}: {result.reason}{warn}"


def markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
