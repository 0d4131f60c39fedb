"""The small, serialisable records that pass between discovery, classification, analysis and reporting.

Everything here crosses process boundaries (worker processes, Prefect task parameters, the JSON
summary), so it holds plain values only: never pylinac objects or open files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from linac_qa.history.series import Level


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # analysed, out of tolerance
    ERROR = "error"  # should have been analysable, could not be
    IGNORED = "ignored"  # not QA data


# Sorts before any acquisition time (which always has its time zone).
EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)


class SkipReason(StrEnum):
    """Why discovery did not look at a file; counted, never listed (docs/design.md section 2)."""

    DONE = "done"
    UNSETTLED = "unsettled"
    HIDDEN = "hidden"
    OWN_OUTPUT = "own-output"
    AVOID_KEYWORDS = "avoid-keywords"
    WINDOW = "window"
    WAITING_FOR_PARTNER = "waiting-for-partner"
    STOPPED = "stopped"  # planned, but the run was stopped (Ctrl-C) before its analysis began
    NESTED_RUN = "nested-run"  # a folder with its own state (DIR/.linac-qa): its own runs process it


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DicomHeader(Record):
    """What classification and grouping need from a DICOM header; read without pixel data."""

    modality: str | None = None
    sop_class_uid: str | None = None
    instance_uid: str | None = None  # SOPInstanceUID: the same image exported twice has the same one
    study_uid: str | None = None
    series_uid: str | None = None
    series_number: int | None = None
    acquired: dt.datetime | None = None
    machine: str | None = None  # RadiationMachineName, else StationName
    machine_ids: tuple[str, ...] = ()  # every identifier of the machine found in the header
    texts: tuple[str, ...] = ()  # the tags that name an acquisition (labels and descriptions)
    patient_texts: tuple[tuple[str, str], ...] = ()  # (tag, value): the QA patient, plan and beam names
    energy: str | None = None  # "6X", "6X FFF", "10X": what VMAT images are paired by
    attributes: dict[str, str] = Field(default_factory=dict)  # read for routing rules
    has_pixels: bool = False
    pixel_bytes_missing: int = 0  # a truncated file: what its header promises but it lacks
    has_sid: bool = False


class ClassifiedFile(Record):
    """One discovered file after classification: a candidate for an analysis, or a final verdict."""

    path: str  # relative to the processed directory, POSIX separators
    analysis: str | None = None  # the config section it belongs to
    status: Status | None = None  # set when classification alone decides (ignored / error)
    reason: str = ""
    keyword: str | None = None
    header: DicomHeader | None = None
    zip_members: tuple[str, ...] = ()  # DICOM members of a zip, in archive order
    variant: dict[str, Any] = Field(default_factory=dict)  # options a routing rule gave
    # Nothing names this file's test (no rule, no keyword): its route, or its being ignored, comes
    # from what it holds, so a named neighbour may claim it (linac_qa.grouping.plan).
    by_content: bool = False

    @property
    def texts(self) -> tuple[str, ...]:
        """Every text that may name the test or its variant, most specific first: the file name,
        the DICOM labels, the folder names from the nearest up, the QA patient, plan and beam."""
        path = PurePosixPath(self.path)
        header = self.header
        return (
            path.name,
            *(header.texts if header else ()),
            *reversed(path.parent.parts),
            *(value for _, value in (header.patient_texts if header else ())),
        )


class Acquisition(Record):
    """One unit of analysis: a single image, a Winston-Lutz set, a zip; what one task run analyses."""

    analysis: str
    files: tuple[str, ...]  # inputs relative to the directory; a zip is listed as the zip itself
    name: str  # what a physicist calls it: file name, folder name or zip name
    output_stem: str  # relative path of the outputs without the suffix, e.g. "sub/WL_TrueBeam1_A"
    machine: str | None = None
    acquired: dt.datetime | None = None
    variant: dict[str, Any] = Field(
        default_factory=dict
    )  # e.g. {"fff": True}, {"nominal_field_mm": [100, 100]}
    warnings: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.analysis}:{self.files[0]}"


Metric = float | int | str | bool | None


class MetricLevel(Record):
    """One metric judged against the levels in force at its acquisition time (linac_qa.history)."""

    level: Level | None  # None: a relative level with no baseline in force yet
    value: float
    baseline: float | None = None
    tolerance: tuple[float | None, float | None] | None = None  # (low, high); None: no limit that side
    action: tuple[float | None, float | None] | None = None
    control: tuple[float | None, float | None] | None = None  # the individuals chart's limits
    drift: str | None = None  # the drift rule this value completed


class AnalysisResult(BaseModel):
    """One row of the JSON summary (docs/design.md section 2), plus a few fields consumers may ignore."""

    model_config = ConfigDict(extra="forbid")

    analysis: str | None
    model: str | None
    files: list[str]
    status: Status
    reason: str
    metrics: dict[str, Metric] = Field(default_factory=dict)
    outputs: list[str] = Field(default_factory=list)
    unit: str | None = None
    acquired: dt.datetime | None = None
    warnings: list[str] = Field(default_factory=list)
    seconds: float | None = None
    # True when at least one pass criterion decided the status. A `passed` result with nothing
    # judged (a planar phantom with no criteria configured) keeps the status the contract allows,
    # and is shown as "not judged", never among the passes.
    judged: bool = False
    # The acquisition's variant (FFF, MLC, phantom model...) as the record keys its series by.
    variant: str | None = None
    # The worst level of its metrics, and each judged metric's (with the baseline used); None and
    # empty when no level applies.
    level: Level | None = None
    levels: dict[str, MetricLevel] = Field(default_factory=dict)

    @classmethod
    def error(
        cls, analysis: str | None, files: Iterable[str], reason: str, model: str | None = None
    ) -> AnalysisResult:
        """Files that should have been analysable and cannot be, known before any analysis."""
        return cls(analysis=analysis, model=model, files=list(files), status=Status.ERROR, reason=reason)

    @classmethod
    def ignored(
        cls, analysis: str | None, files: Iterable[str], reason: str, model: str | None = None
    ) -> AnalysisResult:
        """Files that are no QA result of their own, saying why."""
        return cls(analysis=analysis, model=model, files=list(files), status=Status.IGNORED, reason=reason)

    @classmethod
    def classified(cls, cf: ClassifiedFile) -> AnalysisResult:
        """The verdict classification alone reached on a file (ignored, or an error)."""
        assert cf.status is not None
        return cls(analysis=cf.analysis, model=None, files=[cf.path], status=cf.status, reason=cf.reason)

    @classmethod
    def acquisition_error(
        cls, acq: Acquisition, unit: str | None, reason: str = "", model: str | None = None
    ) -> AnalysisResult:
        """An acquisition's result while it has no verdict: an error, until its analysis gives one.
        `unit`: the configured one; else the machine the data names."""
        return cls(
            analysis=acq.analysis,
            model=model,
            files=list(acq.files),
            status=Status.ERROR,
            reason=reason,
            unit=unit or acq.machine,
            acquired=acq.acquired,
            warnings=list(acq.warnings),
        )

    @property
    def is_problem(self) -> bool:
        return self.status in (Status.FAILED, Status.ERROR)

    @property
    def not_judged(self) -> bool:
        return self.status is Status.PASSED and not self.judged
