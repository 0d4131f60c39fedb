"""Picket fence (MLC positions): pylinac's own `passed` at the configured tolerance."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator
from pylinac import PicketFence
from pylinac.picketfence import MLC

from linac_qa.analyses.base import AnalysisType, Inputs, VariantChecks, Verdict, enum_member, results_data
from linac_qa.criteria import Limit, judge
from linac_qa.model import Acquisition, Status
from linac_qa.sections import AnalysisSettings, Keyword

# Fewer pickets than this is not a picket fence, whatever pylinac fitted (e.g. a misnamed WL image).
MIN_PICKETS = 3


class PicketFenceSettings(AnalysisSettings):
    keywords: list[Keyword] = Field(default_factory=lambda: ["pf", "picket", "picket fence"])
    mlc: str = "Millennium"
    analysis: dict[str, Any] = Field(default_factory=lambda: {"tolerance": 0.5, "action_tolerance": 0.3})

    _mlc = field_validator("mlc")(lambda value: _known_mlc(value))


def _known_mlc(value: str) -> str:
    enum_member(MLC, value)
    return value


class PicketFenceAnalysis(AnalysisType):
    section = "picket-fence"
    settings_model = PicketFenceSettings
    pylinac_classes = (PicketFence,)
    # The report's picture: the analysed image with its leaf-error subplot.
    report_image_method = "save_analyzed_image"
    variant_options: ClassVar[VariantChecks] = {"mlc": lambda value: _known_mlc(str(value))}

    def load(self, inputs: Inputs, acq: Acquisition, settings: AnalysisSettings) -> Any:
        assert isinstance(settings, PicketFenceSettings)
        mlc = acq.variant.get("mlc", settings.mlc)
        return PicketFence(str(inputs.single), mlc=enum_member(MLC, mlc))

    def judge(self, analysed: Any, acq: Acquisition, settings: AnalysisSettings) -> Verdict:
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
        if r.number_of_pickets < MIN_PICKETS:
            reason = f"only {r.number_of_pickets} picket(s) found; not a picket fence image"
            return Verdict(Status.ERROR, reason, metrics)
        status, reason = judge([Limit("max leaf error", r.max_error_mm, r.tolerance_mm, ok=r.passed)])
        return Verdict(status, reason, metrics)
