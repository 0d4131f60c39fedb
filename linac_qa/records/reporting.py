"""Tables and text for people: the results table artifact, per-analysis markdown, terminal lines."""

from __future__ import annotations

import re
from collections.abc import Iterable

from linac_qa.model import AnalysisResult, Status
from linac_qa.records.summary import RunSummary

MARKS = {Status.PASSED: "PASS", Status.FAILED: "FAIL", Status.ERROR: "ERROR", Status.IGNORED: "ignored"}
NOT_JUDGED = "NOT JUDGED"


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
    return [
        {
            "analysis": r.analysis or "",
            "acquisition": acquisition_label(r),
            "status": "not judged" if r.not_judged else r.status.value,
            "reason": r.reason,
            "unit": r.unit or "",
            "acquired": r.acquired.strftime("%Y-%m-%d %H:%M") if r.acquired else "",
            "report": next((o for o in r.outputs if o.endswith(".pdf")), ""),
            "warnings": "; ".join(r.warnings),
        }
        for r in problems_first(summary.results)
    ]


def problems_first(results: Iterable[AnalysisResult]) -> list[AnalysisResult]:
    """Failures, errors, results not judged, passes, ignored files."""
    order = {Status.FAILED: 0, Status.ERROR: 1, Status.PASSED: 3, Status.IGNORED: 4}
    return sorted(results, key=lambda r: 2 if r.not_judged else order[r.status])


def analysis_markdown(section: str, results: list[AnalysisResult]) -> str:
    lines = [f"# {section}", "", "| acquisition | verdict | reason | report |", "|---|---|---|---|"]
    for r in problems_first(results):
        report = next((o for o in r.outputs if o.endswith(".pdf")), "")
        verdict = mark(r.status, r.judged)
        lines.append(
            f"| {_cell(acquisition_label(r))} | **{verdict}** | {_cell(r.reason)} | {_cell(report)} |"
        )
        for key, value in r.metrics.items():
            if value is not None:
                lines.append(f"|  | {key} | {value} |  |")
    return "\n".join(lines)


def verdict_line(result: AnalysisResult) -> str:
    warn = f"  [warning: {'; '.join(result.warnings)}]" if result.warnings else ""
    what = f"{result.analysis or '-':<15} {acquisition_label(result)}"
    return f"{mark(result.status, result.judged):<10} {what}: {result.reason}{warn}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
