"""Picket fence (MLC positions): pylinac's own `passed` at the configured tolerance."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from linac_qa.analyses.base import (
    AnalysisType,
    Inputs,
    VariantChecks,
    Verdict,
    enum_member,
    from_pylinac,
    results_data,
)
from linac_qa.analyses.criteria import Limit, expected_count, judge, require_plausible
from linac_qa.model import Acquisition
from linac_qa.sections import AnalysisSettings, Keyword

# Without `expected-pickets`, fewer pickets than this is not a picket fence, whatever pylinac fitted.
MIN_PICKETS = 2
DEFAULT_MLC = "Millennium"


class PicketFenceSettings(AnalysisSettings):
    keywords: list[Keyword] = Field(default_factory=lambda: ["pf", "picket", "picket fence"])
    mlc: str = DEFAULT_MLC
    analysis: dict[str, Any] = Field(default_factory=lambda: {"tolerance": 0.5, "action_tolerance": 0.3})
    # How many pickets the clinic's fence has: any other count found is implausible (a picket
    # pylinac missed is a picket not judged). null: at least 2.
    expected_pickets: int | None = Field(default=None, ge=MIN_PICKETS)

    _mlc = field_validator("mlc")(lambda value: _known_mlc(value))


def _known_mlc(value: str) -> str:
    """Our default is checked by a test, not by importing pylinac at every start."""
    if value != DEFAULT_MLC:
        enum_member(from_pylinac("picketfence.MLC"), value)
    return value


class PicketFenceAnalysis(AnalysisType[PicketFenceSettings]):
    section = "picket-fence"
    settings_model = PicketFenceSettings
    pylinac_names = ("PicketFence",)
    # The report's picture: the analysed image with its leaf-error subplot.
    report_image_method = "save_analyzed_image"
    variant_options: ClassVar[VariantChecks] = {"mlc": lambda value: _known_mlc(str(value))}

    def load(self, inputs: Inputs, acq: Acquisition, settings: PicketFenceSettings) -> Any:
        mlc = acq.variant.get("mlc", settings.mlc)
        mlc_model = enum_member(from_pylinac("picketfence.MLC"), mlc)
        return self.pylinac_class(acq, settings)(str(inputs.single), mlc=mlc_model)

    def judge(self, analysed: Any, acq: Acquisition, settings: PicketFenceSettings) -> Verdict:
        r = results_data(analysed)
        metrics = {
            "max_error_mm": round(r.max_error_mm, 3),
            "tolerance_mm": r.tolerance_mm,
            "action_tolerance_mm": r.action_tolerance_mm,
            "percent_leaves_passing": round(r.percent_leaves_passing, 2),
            "number_of_pickets": r.number_of_pickets,
            "max_error_picket": r.max_error_picket,
            "max_error_leaf": r.max_error_leaf,
        }
        pickets = expected_count(
            "pickets",
            r.number_of_pickets,
            settings.expected_pickets,
            MIN_PICKETS,
            "picket-fence.expected-pickets",
        )
        require_plausible([pickets], metrics)
        return judge(
            [
                Limit(
                    "max leaf error",
                    r.max_error_mm,
                    r.tolerance_mm,
                    ok=r.passed,
                    key="picket-fence.analysis.tolerance",
                )
            ],
            metrics=metrics,
        )
