"""Base classes of the typed config: kebab-case keys in YAML, unknown keys refused."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from linac_qa.history.levels import LevelSpec
from linac_qa.review.schedules import check_schedule

# A real keyword is a word or two ("picket fence"); every file name and DICOM label is matched
# against each one, and they appear in reasons and reports.
Keyword = Annotated[str, StringConstraints(max_length=64)]


def kebab(name: str) -> str:
    return name.replace("_", "-")


class Section(BaseModel):
    model_config = ConfigDict(
        alias_generator=kebab, populate_by_name=True, extra="forbid", validate_default=True
    )


class AnalysisSettings(Section):
    """What every analysis section has. Subclasses override the defaults and add their criteria."""

    # analyze() keywords the tool sets per acquisition, with the option that controls each.
    reserved_analysis_keys: ClassVar[dict[str, str]] = {}

    enabled: bool = True
    keywords: list[Keyword] = Field(default_factory=list)
    analysis: dict[str, Any] = Field(default_factory=dict)
    # The first N results of a metric that has levels and no baseline set it (their mean); 0:
    # baselines are set only by `python -m flows.baseline` (which may set one for any metric).
    auto_baseline: int = Field(default=0, ge=0)
    # Tolerance and action levels per metric (linac_qa.history.levels); beside the section's own
    # criteria, which keep deciding as before.
    levels: dict[str, LevelSpec] = Field(default_factory=dict)
    # How often the test is due (linac_qa.review.due): daily, weekly, monthly, annual or an RFC 5545
    # rule; None: never due, so never overdue. `window_days`: the grace after each due date.
    schedule: str | None = None
    window_days: float = Field(default=0, ge=0)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return None if value is None else check_schedule(value)
