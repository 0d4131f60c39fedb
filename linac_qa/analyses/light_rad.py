"""Light/radiation coincidence with a field-size phantom (Standard Imaging FC-2 by default): the
field-to-BB offsets always, the field size when the nominal size is known from a `WxH` token."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from linac_qa.analyses.base import AnalysisType, Inputs, Verdict, results_data
from linac_qa.analyses.criteria import Limit, is_number, judge, require_plausible, rounded
from linac_qa.intake.keywords import nominal_field_mm
from linac_qa.model import Acquisition, ClassifiedFile
from linac_qa.sections import AnalysisSettings, Keyword, Section

PHANTOMS = ("StandardImagingFC2", "DoselabRLf", "IsoAlign", "SNCFSQA")


class LightRadTolerances(Section):
    field_bb_offset_mm: float = Field(default=2.0, gt=0)
    field_size_mm: float = Field(default=2.0, gt=0)


class LightRadSettings(AnalysisSettings):
    keywords: list[Keyword] = Field(
        default_factory=lambda: ["light rad", "lightrad", "fc2", "field size", "light field"]
    )
    phantom: Literal["StandardImagingFC2", "DoselabRLf", "IsoAlign", "SNCFSQA"] = "StandardImagingFC2"
    tolerances: LightRadTolerances = Field(default_factory=LightRadTolerances)


class LightRadAnalysis(AnalysisType[LightRadSettings]):
    section = "light-rad"
    settings_model = LightRadSettings
    pylinac_names = PHANTOMS

    def pylinac_name(self, acq: Acquisition, settings: LightRadSettings) -> str:
        return settings.phantom

    def variant(self, file: ClassifiedFile, settings: LightRadSettings) -> dict[str, Any]:
        nominal = nominal_field_mm(file.texts)
        return {"nominal_field_mm": list(nominal)} if nominal else {}

    def load(self, inputs: Inputs, acq: Acquisition, settings: LightRadSettings) -> Any:
        return self.pylinac_class(acq, settings)(str(inputs.single))

    def judge(self, analysed: Any, acq: Acquisition, settings: LightRadSettings) -> Verdict:
        r = results_data(analysed)
        tol = settings.tolerances
        nominal = acq.variant.get("nominal_field_mm")
        metrics = {
            "field_size_x_mm": rounded(r.field_size_x_mm, 2),
            "field_size_y_mm": rounded(r.field_size_y_mm, 2),
            "field_bb_offset_x_mm": rounded(r.field_bb_offset_x_mm, 3),
            "field_bb_offset_y_mm": rounded(r.field_bb_offset_y_mm, 3),
            "nominal_field_x_mm": nominal[0] if nominal else None,
            "nominal_field_y_mm": nominal[1] if nominal else None,
        }
        sizes = (r.field_size_x_mm, r.field_size_y_mm)
        offsets = (r.field_bb_offset_x_mm, r.field_bb_offset_y_mm)
        require_plausible(
            [
                (all(is_number(s) and s > 0 for s in sizes), "no field found (field size not measured)"),
                (all(is_number(o) for o in offsets), "BBs not located (field-to-BB offset not measured)"),
            ],
            metrics,
        )
        offset_key = "light-rad.tolerances.field-bb-offset-mm"
        limits = [
            Limit("field-BB offset X", abs(r.field_bb_offset_x_mm), tol.field_bb_offset_mm, key=offset_key),
            Limit("field-BB offset Y", abs(r.field_bb_offset_y_mm), tol.field_bb_offset_mm, key=offset_key),
        ]
        notes = []
        if nominal:
            w, h = nominal
            size_key = "light-rad.tolerances.field-size-mm"
            limits.append(
                Limit(f"field X vs {w:g} mm", abs(r.field_size_x_mm - w), tol.field_size_mm, key=size_key)
            )
            limits.append(
                Limit(f"field Y vs {h:g} mm", abs(r.field_size_y_mm - h), tol.field_size_mm, key=size_key)
            )
        else:
            notes.append("field size not judged: no nominal size (a WxH token in cm) in the name or label")
        return judge(limits, notes, metrics)
