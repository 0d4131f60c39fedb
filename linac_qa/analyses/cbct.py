"""CT and CBCT phantoms: CatPhan 503/504/600/604/700, Quart DVT, ACR CT and ACR MRI (large).

Slices are grouped by SeriesInstanceUID (a folder may hold several series), or come as a zip. The
phantom model comes from a model keyword in the name or labels, else `model`. CatPhans are judged
on the criteria below; the other models on pylinac's own pass flags.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar, Literal, get_args

from pydantic import Field

from linac_qa.analyses.base import (
    AnalysisType,
    Grouping,
    Inputs,
    VariantChecks,
    Verdict,
    mtf_at,
    one_of,
    results_data,
)
from linac_qa.analyses.criteria import Flag, Limit, is_number, judge, require_plausible, rounded
from linac_qa.history.levels import LevelSpec, relative
from linac_qa.intake.keywords import best_match
from linac_qa.model import Acquisition, ClassifiedFile, Metric
from linac_qa.sections import AnalysisSettings, Keyword, Section

ModelName = Literal[
    "CatPhan503", "CatPhan504", "CatPhan600", "CatPhan604", "CatPhan700", "QuartDVT", "ACRCT", "ACRMRILarge"
]
MODELS: tuple[str, ...] = get_args(ModelName)  # pylinac's class names


DEFAULT_MODEL_KEYWORDS: dict[str, ModelName] = {
    "catphan503": "CatPhan503",
    "catphan504": "CatPhan504",
    "catphan600": "CatPhan600",
    "catphan604": "CatPhan604",
    "catphan700": "CatPhan700",
    "quart": "QuartDVT",
    "acr": "ACRCT",
    "acr mri": "ACRMRILarge",
}


class CTCriteria(Section):
    hu_linearity: bool = True
    uniformity: bool = True
    geometry: bool = True
    slice_thickness: bool = True
    low_contrast_min_rois: int | None = Field(default=None, ge=0)  # off unless set
    mtf50_min_lp_mm: float | None = Field(default=None, gt=0)  # off unless set


class CBCTSettings(AnalysisSettings):
    keywords: list[Keyword] = Field(default_factory=lambda: ["cbct", "catphan", "ct phantom", "quart", "acr"])
    model: ModelName = "CatPhan504"
    model_keywords: dict[Keyword, ModelName] = Field(default_factory=lambda: dict(DEFAULT_MODEL_KEYWORDS))

    criteria: CTCriteria = Field(default_factory=CTCriteria)
    # Image quality as constancy against the baseline; geometry in mm.
    levels: dict[str, LevelSpec] = Field(
        default_factory=lambda: {
            "mtf50_lp_mm": relative("10%", "20%"),
            "uniformity_index": relative(2, 4),
            "slice_thickness_mm": relative(0.5, 1),
            "avg_node_distance_mm": relative(1, 2),
        }
    )
    min_slices: int = Field(default=10, ge=1)


class CBCTAnalysis(AnalysisType[CBCTSettings]):
    section = "cbct"
    settings_model = CBCTSettings
    grouping = Grouping.SESSION
    modalities = frozenset({"CT", "MR"})
    claims_modalities = frozenset({"CT"})
    accepts_images = False
    pylinac_names = MODELS
    variant_options: ClassVar[VariantChecks] = {"model": one_of(MODELS)}

    def pylinac_name(self, acq: Acquisition, settings: CBCTSettings) -> str:
        return str(acq.variant.get("model", settings.model))

    def variant(self, file: ClassifiedFile, settings: CBCTSettings) -> dict[str, Any]:
        match = best_match(file.texts, [(model, kw) for kw, model in settings.model_keywords.items()])
        return {"model": match[0]} if match else {}

    def check_group(self, acq: Acquisition, settings: CBCTSettings) -> str | None:
        slices = acq.variant.get("images", len(acq.files))
        if slices < settings.min_slices:
            return f"series of {slices} slice(s); a phantom scan needs at least {settings.min_slices}"
        return None

    def load(self, inputs: Inputs, acq: Acquisition, settings: CBCTSettings) -> Any:
        return self.pylinac_class(acq, settings)([str(p) for p in inputs.paths])

    def judge(self, analysed: Any, acq: Acquisition, settings: CBCTSettings) -> Verdict:
        if self.model_name(acq, settings).startswith("CatPhan"):
            return _judge_catphan(results_data(analysed), settings.criteria)
        model = self.model_name(acq, settings)
        data = json.loads(results_data(analysed).model_dump_json())
        return _judge_by_pylinac_flags(data, _catphan_only(settings.criteria, model))


def _judge_catphan(r: Any, c: CTCriteria) -> Verdict:
    ctp404, ctp486 = r.ctp404, r.ctp486
    mtf50 = mtf_at(r.ctp528.mtf_lp_mm, 50) if r.ctp528 else None
    seen = r.ctp515.num_rois_seen if r.ctp515 else None
    hu = {name: roi.value for name, roi in ctp404.hu_rois.items()}
    uniformity = {name: roi.value for name, roi in ctp486.rois.items()} if ctp486 else {}
    metrics: dict[str, Metric] = {
        "uniformity_index": rounded(ctp486.uniformity_index, 3) if ctp486 else None,
        "avg_node_distance_mm": rounded(ctp404.avg_line_distance_mm, 3),
        "slice_thickness_mm": rounded(ctp404.measured_slice_thickness_mm, 3),
        "low_contrast_rois_seen": seen,
        "mtf50_lp_mm": rounded(mtf50, 3),
        "roll_deg": rounded(r.catphan_roll_deg, 2),
        "slices": r.num_images,
    }
    lost_hu = [name for name, value in hu.items() if not is_number(value)]
    lost_uniformity = [name for name, value in uniformity.items() if not is_number(value)]
    require_plausible(
        [
            (ctp486 is not None, "uniformity module (CTP486) not located"),
            (bool(hu) and not lost_hu, f"HU not measured in {', '.join(lost_hu) or 'any ROI'} (CTP404)"),
            (
                not lost_uniformity,
                f"HU not measured in uniformity ROI(s) {', '.join(lost_uniformity)} (CTP486)",
            ),
            (is_number(ctp404.avg_line_distance_mm), "geometry nodes not located (CTP404)"),
            (
                is_number(ctp404.measured_slice_thickness_mm),
                "slice thickness wire ramps not located (CTP404)",
            ),
        ],
        metrics,
    )
    worst = max(ctp404.hu_rois.values(), key=lambda roi: abs(roi.difference))
    metrics |= {"hu_worst_roi": worst.name, "hu_worst_difference": rounded(worst.difference, 1)}
    checks: list[Limit | Flag] = []
    if c.hu_linearity:
        hu_detail = f"worst {worst.name} {worst.value:.0f} HU vs {worst.nominal_value:.0f}"
        hu_detail += f", tolerance {ctp404.hu_tolerance:g}"
        checks.append(Flag("HU linearity", ctp404.hu_linearity_passed, hu_detail))
    if c.uniformity:
        checks.append(Flag("uniformity", ctp486.passed, f"uniformity index {ctp486.uniformity_index:.2f}"))
    if c.geometry:
        checks.append(
            Flag(
                "geometry", ctp404.geometry_passed, f"mean node distance {ctp404.avg_line_distance_mm:.2f} mm"
            )
        )
    if c.slice_thickness:
        thickness = f"measured {ctp404.measured_slice_thickness_mm:.2f} mm"
        checks.append(Flag("slice thickness", ctp404.thickness_passed, thickness))
    if c.low_contrast_min_rois is not None:
        checks.append(
            Limit(
                "low-contrast ROIs seen",
                seen,
                c.low_contrast_min_rois,
                "",
                "min",
                digits=0,
                key="cbct.criteria.low-contrast-min-rois",
            )
        )
    if c.mtf50_min_lp_mm is not None:
        checks.append(
            Limit("MTF 50 %", mtf50, c.mtf50_min_lp_mm, "lp/mm", "min", key="cbct.criteria.mtf50-min-lp-mm")
        )
    return judge(checks, metrics=metrics)


def _catphan_only(c: CTCriteria, model: str) -> list[Limit]:
    """The optional criteria that only a CatPhan is judged on, when set for another model: each an
    unjudged limit, so that the result says it could not be judged rather than skipping it."""
    label = f"(CatPhan models only, not {model})"
    return [
        Limit(f"{name} {label}", None, limit, unit, "min", key=f"cbct.criteria.{key}")
        for name, limit, unit, key in (
            ("low-contrast ROIs seen", c.low_contrast_min_rois, "", "low-contrast-min-rois"),
            ("MTF 50 %", c.mtf50_min_lp_mm, "lp/mm", "mtf50-min-lp-mm"),
        )
        if limit is not None
    ]


def _judge_by_pylinac_flags(data: dict[str, Any], unjudgeable: list[Limit]) -> Verdict:
    flags = dict(_passed_flags(data, ""))
    checks: list[Limit | Flag] = [*unjudgeable, *(Flag(path, ok) for path, ok in flags.items())]
    notes = [] if flags else ["pylinac reports no pass/fail for this phantom"]
    metrics: dict[str, Metric] = {
        "pylinac_checks": len(flags),
        "failed_checks": sum(not ok for ok in flags.values()),
    }
    return judge(checks, notes, metrics)


def _passed_flags(node: Any, path: str) -> Iterator[tuple[str, bool]]:
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(value, bool) and str(key).endswith("passed"):
                yield where.removesuffix(".passed").removesuffix("_passed"), value
            else:
                yield from _passed_flags(value, where)
