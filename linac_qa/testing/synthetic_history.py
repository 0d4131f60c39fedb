"""Seeded synthetic histories for the record's tests and benchmark: results made as the run makes
them (no analysis), one a day from a fixed start, their metric values chosen by the caller."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path

from linac_qa.history import drift
from linac_qa.model import AnalysisResult, Metric, Status

START = dt.datetime(2021, 1, 4, 7, 30, tzinfo=dt.UTC)


def day(i: int) -> dt.datetime:
    return START + dt.timedelta(days=i)


def result_on(
    i: int,
    metrics: Mapping[str, Metric],
    *,
    machine: str = "TrueBeam1",
    analysis: str = "field-analysis",
    variant: str = "",
    status: Status = Status.PASSED,
) -> AnalysisResult:
    """An analysed result acquired on day `i`, with outputs named after its day and variant."""
    stem = f"{analysis}/{machine}_{i:05d}{'_' + variant.replace(' ', '') if variant else ''}_analysis"
    return AnalysisResult(
        analysis=analysis,
        model="FieldAnalysis",
        files=[f"{analysis}/{machine}_{i:05d}.dcm"],
        status=status,
        reason="synthetic",
        metrics=dict(metrics),
        outputs=[f"{stem}.pdf", f"{stem}.json"],
        unit=machine,
        acquired=day(i),
        judged=True,
        variant=variant,
    )


def write_outputs(directory: Path, result: AnalysisResult, sources: dict[str, str]) -> None:
    """The result's `.json` (our part, as the worker writes it) and a small PDF, under `directory`."""
    pdf, document = (directory / o for o in result.outputs)
    document.parent.mkdir(parents=True, exist_ok=True)
    pdf.write_bytes(b"%PDF-1.4\n% synthetic report\n%%EOF\n")
    ours: dict[str, object] = {
        "analysis": result.analysis,
        "model": result.model,
        "acquisition": result.files[0],
        "status": result.status.value,
        "reason": result.reason,
        "judged": result.judged,
        "metrics": result.metrics,
        "warnings": [],
        "unit": result.unit,
        "acquired": result.acquired.isoformat() if result.acquired else None,
        "variant": result.variant,
        "provenance": {"inputs": {"count": len(sources), "combined_sha256": "0" * 64, "sha256": sources}},
    }
    document.write_text(json.dumps({"linac-qa-flows": ours, "pylinac": {}}), encoding="utf-8")


def drift_flags(values: list[float], window: int) -> list[str | None]:
    """The drift rule each value after the first `window` breaks, judged as the record judges a
    series (linac_qa.history.judging): by the chart of every value up to it."""
    flags = []
    for i in range(window, len(values)):
        history = values[: i + 1]
        c = drift.chart(history, window)
        flags.append(drift.broken_rule(history[window:], c) if c else None)
    return flags
