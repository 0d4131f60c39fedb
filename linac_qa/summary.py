"""The run's summary: the JSON document of `--json` (DESIGN.md section 2) and the exit status."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from pydantic import BaseModel, Field

from linac_qa.model import AnalysisResult, SkipReason, Status


class Notification(BaseModel):
    channel: str
    status: str  # sent | failed | pending | none
    detail: str = ""


class RunSummary(BaseModel):
    directory: str
    unit: str | None
    started: dt.datetime
    finished: dt.datetime
    results: list[AnalysisResult] = Field(default_factory=list)
    skipped: dict[str, int] = Field(default_factory=lambda: skipped_counts(Counter()))
    notifications: list[Notification] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)  # about the run itself, e.g. a source not found

    def counts(self) -> Counter[str]:
        return Counter(r.status.value for r in self.results)

    @property
    def exit_code(self) -> int:
        return 1 if any(r.is_problem for r in self.results) else 0

    def headline(self) -> str:
        c = self.counts()
        parts = [f"{c[s.value]} {s.value}" for s in Status if c[s.value]]
        skipped = sum(self.skipped.values())
        return (", ".join(parts) or "nothing new") + (f"; {skipped} skipped" if skipped else "")


def skipped_counts(counter: Counter[str]) -> dict[str, int]:
    """The contract's keys always; `stopped` (a watch stopped before these began) and `nested-run`
    (folders processed by runs of their own) only when they happened, so that the document of an
    ordinary run keeps exactly the documented keys."""
    counts = {r.value: int(counter.get(r.value, 0)) for r in SkipReason}
    for occasional in (SkipReason.STOPPED, SkipReason.NESTED_RUN):
        if not counts[occasional]:
            del counts[occasional]
    return counts
