"""The run's summary: the JSON document of `--json` (docs/design.md section 2) and the exit status."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

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
    # Why the run could not be done at all (exit status 4); then there are no results.
    error: str | None = None

    @model_serializer(mode="wrap")
    def _document(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """`error` only in the document of a run that could not be done."""
        doc: dict[str, Any] = handler(self)
        if doc.get("error") is None:
            doc.pop("error", None)
        return doc

    @property
    def exit_code(self) -> int:
        """The command line's exit status (flows/cli.py EXIT_STATUSES): 4 for a run that could not
        be done, 1 for QA problems, else 0."""
        if self.error is not None:
            return 4
        return 1 if any(r.is_problem for r in self.results) else 0

    def headline(self, *, zero_skipped: bool = False) -> str:
        """What the run found, by outcome, then how many files it skipped: a count of none is said
        only with `zero_skipped` (the command line's last line always says it)."""
        skipped = sum(self.skipped.values())
        said = skipped or zero_skipped
        why = skipped_phrase(self.skipped)
        return (
            (counted(self.results) or "nothing new")
            + (f"; {skipped} skipped" if said else "")
            + (f" ({why})" if skipped and why else "")
        )


# How people see results: a pass on which nothing was judged is counted apart from the passes.
NOT_JUDGED = "not judged"
OUTCOMES = (Status.PASSED.value, NOT_JUDGED, Status.FAILED.value, Status.ERROR.value, Status.IGNORED.value)


# What each reason for skipping a file means, as the headline says it.
SKIPPED_AS = {
    SkipReason.DONE.value: "already analysed",
    SkipReason.UNSETTLED.value: "still being written",
    SkipReason.HIDDEN.value: "hidden",
    SkipReason.OWN_OUTPUT.value: "our own outputs",
    SkipReason.AVOID_KEYWORDS.value: "excluded by avoid-keywords",
    SkipReason.WINDOW.value: "outside the time window",
    SkipReason.WAITING_FOR_PARTNER.value: "waiting for the rest of their set",
    SkipReason.STOPPED.value: "not begun before the stop",
    SkipReason.NESTED_RUN.value: "in folders with runs of their own",
}


def skipped_phrase(skipped: dict[str, int]) -> str:
    """What the skipped files are: "15 already analysed, 32 our own outputs"."""
    return ", ".join(f"{n} {SKIPPED_AS.get(k, k)}" for k, n in skipped.items() if n)


def outcome(result: AnalysisResult) -> str:
    return NOT_JUDGED if result.not_judged else result.status.value


def verdict(result: AnalysisResult) -> str:
    """The outcome as a word that stands out: PASSED, FAILED, ERROR, NOT JUDGED, IGNORED."""
    return outcome(result).upper()


def counted(results: Iterable[AnalysisResult]) -> str:
    """How many results of each outcome there are, those there are: "1 passed, 2 failed"."""
    c = Counter(outcome(r) for r in results)
    return ", ".join(f"{c[o]} {o}" for o in OUTCOMES if c[o])


def skipped_counts(counter: Counter[str]) -> dict[str, int]:
    """The contract's keys always; `stopped` (a watch stopped before these began) and `nested-run`
    (folders processed by runs of their own) only when they happened, so that the document of an
    ordinary run keeps exactly the documented keys."""
    counts = {r.value: int(counter.get(r.value, 0)) for r in SkipReason}
    for occasional in (SkipReason.STOPPED, SkipReason.NESTED_RUN):
        if not counts[occasional]:
            del counts[occasional]
    return counts
