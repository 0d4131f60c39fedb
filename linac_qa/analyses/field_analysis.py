"""Open-field flatness and symmetry (pylinac FieldAnalysis). FFF beams, recognised by keyword, are
analysed with is_FFF and their flatness is not judged."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field
from pylinac import FieldAnalysis

from linac_qa.analyses.base import AnalysisType, Inputs, VariantChecks, Verdict, results_data, strict_bool
from linac_qa.criteria import Limit, judge
from linac_qa.keywords import any_match
from linac_qa.model import Acquisition, ClassifiedFile
from linac_qa.sections import AnalysisSettings, Keyword, Section


class FieldTolerances(Section):
    symmetry_percent: float = Field(default=2.0, gt=0)
    flatness_percent: float = Field(default=3.0, gt=0)


class FieldAnalysisSettings(AnalysisSettings):
    reserved_analysis_keys: ClassVar[dict[str, str]] = {"is_FFF": "by fff-keywords"}

    keywords: list[Keyword] = Field(default_factory=lambda: ["open field", "flatness", "symmetry", "profile"])
    fff_keywords: list[Keyword] = Field(default_factory=lambda: ["fff"])
    analysis: dict[str, Any] = Field(default_factory=lambda: {"protocol": "VARIAN"})
    tolerances: FieldTolerances = Field(default_factory=FieldTolerances)


class FieldAnalysisType(AnalysisType):
    section = "field-analysis"
    settings_model = FieldAnalysisSettings
    pylinac_classes = (FieldAnalysis,)
    variant_options: ClassVar[VariantChecks] = {"fff": strict_bool}

    def variant(self, file: ClassifiedFile, settings: AnalysisSettings) -> dict[str, Any]:
        assert isinstance(settings, FieldAnalysisSettings)
        return {"fff": True} if any_match(settings.fff_keywords, file.texts) else {}

    def load(self, inputs: Inputs, acq: Acquisition, settings: AnalysisSettings) -> Any:
        return FieldAnalysis(str(inputs.single))

    def analyze_kwargs(self, acq: Acquisition, settings: AnalysisSettings) -> dict[str, Any]:
        return {**super().analyze_kwargs(acq, settings), "is_FFF": bool(acq.variant.get("fff"))}

    def judge(self, analysed: Any, acq: Acquisition, settings: AnalysisSettings) -> Verdict:
        assert isinstance(settings, FieldAnalysisSettings)
        p = results_data(analysed).protocol_results
        tol = settings.tolerances
        sym = max(abs(p["symmetry_horizontal"]), abs(p["symmetry_vertical"]))
        flat = max(abs(p["flatness_horizontal"]), abs(p["flatness_vertical"]))
        limits = [Limit("symmetry", sym, tol.symmetry_percent, unit="%")]
        notes = []
        if acq.variant.get("fff"):
            notes.append("FFF beam: flatness not judged")
        else:
            limits.append(Limit("flatness", flat, tol.flatness_percent, unit="%"))
        status, reason = judge(limits, notes)
        metrics = {
            "symmetry_horizontal_percent": round(p["symmetry_horizontal"], 3),
            "symmetry_vertical_percent": round(p["symmetry_vertical"], 3),
            "flatness_horizontal_percent": round(p["flatness_horizontal"], 3),
            "flatness_vertical_percent": round(p["flatness_vertical"], 3),
            "fff": bool(acq.variant.get("fff")),
        }
        return Verdict(status, reason, metrics)
