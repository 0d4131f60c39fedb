"""A metric's history as the views draw it (dashboard, e-mail charts, Prefect artifacts): plain
values, already judged, so that a view never reads the record or the config itself."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum


class Level(StrEnum):
    """Where a value lies against its baseline's windows (TG-142's tolerance and action levels)."""

    OK = "ok"
    TOLERANCE = "tolerance"  # look at it: the result stays passed and is flagged for review
    ACTION = "action"  # act now: the result is failed


@dataclass(frozen=True)
class SeriesKey:
    machine: str
    analysis: str  # the config section, e.g. "picket-fence"
    metric: str  # the key in the result's `metrics`
    variant: str = ""  # canonical text of what else must match, e.g. "energy=6X FFF"; "" for none


@dataclass(frozen=True)
class Window:
    low: float | None  # None: no limit on that side
    high: float | None


@dataclass(frozen=True)
class Point:
    """One result's value, with what was in force at its acquisition time."""

    acquired: dt.datetime  # from the data, never the analysis time; timezone-aware
    value: float
    result_id: str
    report: str | None = None  # the result's PDF, relative to the processed directory
    baseline: float | None = None
    tolerance: Window | None = None
    action: Window | None = None
    control: Window | None = None  # control limits of the individuals chart
    level: Level | None = None  # None: nothing to judge it against
    drift: str | None = None  # the drift rule it broke, e.g. "2 of 3 beyond 2 sigma above the centre line"


@dataclass(frozen=True)
class BaselineChange:
    """A re-baseline: drawn as a marker; earlier points keep the baseline they were judged by."""

    effective_from: dt.datetime
    value: float
    set_by: str
    reason: str


@dataclass(frozen=True)
class MetricSeries:
    key: SeriesKey
    unit: str = ""  # of the value, e.g. "mm", "%", "HU"; "" when dimensionless
    points: tuple[Point, ...] = ()  # in acquisition order
    baselines: tuple[BaselineChange, ...] = field(default=())

    @property
    def latest(self) -> Point | None:
        return self.points[-1] if self.points else None
