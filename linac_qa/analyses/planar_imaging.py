"""Planar imaging phantoms (kV and MV image quality), the phantom chosen by keyword.

pylinac has no pass/fail for these, which is why pylinac's old watcher could not judge them: the
criteria here are each optional, and a phantom analysed with none configured says so.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from linac_qa.analyses.base import AnalysisType, Inputs, VariantChecks, Verdict, mtf_at, one_of, results_data
from linac_qa.analyses.criteria import Limit, judge, require_plausible, rounded
from linac_qa.history.levels import LevelSpec, relative
from linac_qa.intake.keywords import best_match
from linac_qa.model import Acquisition, ClassifiedFile, Metric
from linac_qa.sections import AnalysisSettings, Keyword, Section

PHANTOMS = (
    "LeedsTOR", "LeedsTORBlue", "LasVegas", "ElektaLasVegas", "StandardImagingQC3", "StandardImagingQCkV",
    "DoselabMC2kV", "DoselabMC2MV", "SNCkV", "SNCMV", "PTWEPIDQC", "IBAPrimusA",
)  # fmt: skip
# The longest matching keyword picks the phantom: "leeds blue" beats "leeds",
# "elekta las vegas" beats "las vegas".
DEFAULT_PHANTOM_KEYWORDS = {
    "leeds": "LeedsTOR",
    "tor": "LeedsTOR",
    "leeds blue": "LeedsTORBlue",
    "tor blue": "LeedsTORBlue",
    "las vegas": "LasVegas",
    "elekta las vegas": "ElektaLasVegas",
    "qc3": "StandardImagingQC3",
    "pipspro": "StandardImagingQC3",
    "qckv": "StandardImagingQCkV",
    "doselab": "DoselabMC2MV",
    "mc2 mv": "DoselabMC2MV",
    "mc2 kv": "DoselabMC2kV",
    "doselab kv": "DoselabMC2kV",
    "snc kv": "SNCkV",
    "snc mv": "SNCMV",
    "epid qc": "PTWEPIDQC",
    "ptw": "PTWEPIDQC",
    "primus": "IBAPrimusA",
}


class PlanarCriteria(Section):
    min_low_contrast_rois_seen: int | None = Field(default=None, ge=0)
    min_mtf50_lp_mm: float | None = Field(default=None, gt=0)
    min_median_contrast: float | None = Field(default=None, ge=0)
    min_median_cnr: float | None = Field(default=None, ge=0)


class PlanarImagingSettings(AnalysisSettings):
    keywords: list[Keyword] = Field(
        default_factory=lambda: ["leeds", "tor", "las vegas", "qc3", "qckv", "doselab", "pipspro", "primus"]
    )
    phantom_keywords: dict[Keyword, str] = Field(default_factory=lambda: dict(DEFAULT_PHANTOM_KEYWORDS))
    default_phantom: str = "LeedsTOR"
    criteria: PlanarCriteria = Field(default_factory=PlanarCriteria)
    # Planar phantoms have no absolute pass criteria: judged as constancy against their baseline.
    levels: dict[str, LevelSpec] = Field(
        default_factory=lambda: {
            "mtf50_lp_mm": relative("10%", "20%"),
            "median_contrast": relative("10%", "20%"),
            "median_cnr": relative("10%", "20%"),
        }
    )

    @field_validator("default_phantom")
    @classmethod
    def _known_phantom(cls, value: str) -> str:
        return _phantom(value)

    @field_validator("phantom_keywords")
    @classmethod
    def _known_phantoms(cls, value: dict[str, str]) -> dict[str, str]:
        return {keyword: _phantom(name) for keyword, name in value.items()}


def _phantom(name: str) -> str:
    if name not in PHANTOMS:
        raise ValueError(f"{name!r} is not one of {', '.join(PHANTOMS)}")
    return name


class PlanarImagingAnalysis(AnalysisType[PlanarImagingSettings]):
    section = "planar-imaging"
    settings_model = PlanarImagingSettings
    pylinac_names = PHANTOMS
    variant_options: ClassVar[VariantChecks] = {"phantom": one_of(PHANTOMS)}

    def pylinac_name(self, acq: Acquisition, settings: PlanarImagingSettings) -> str:
        return str(acq.variant.get("phantom", settings.default_phantom))

    def variant(self, file: ClassifiedFile, settings: PlanarImagingSettings) -> dict[str, Any]:
        match = best_match(file.texts, [(phantom, kw) for kw, phantom in settings.phantom_keywords.items()])
        return {"phantom": match[0]} if match else {}

    def load(self, inputs: Inputs, acq: Acquisition, settings: PlanarImagingSettings) -> Any:
        return self.pylinac_class(acq, settings)(str(inputs.single))

    def judge(self, analysed: Any, acq: Acquisition, settings: PlanarImagingSettings) -> Verdict:
        r = results_data(analysed)
        c = settings.criteria
        mtf50 = mtf_at(r.mtf_lp_mm, 50)
        metrics: dict[str, Metric] = {
            "low_contrast_rois_seen": r.num_contrast_rois_seen,
            "mtf50_lp_mm": rounded(mtf50, 3),
            "median_contrast": rounded(r.median_contrast, 4),
            "median_cnr": rounded(r.median_cnr, 2),
        }
        # Neither a low-contrast insert seen nor a line pair resolved: pylinac placed its ROIs on an
        # image without the phantom's features (blank, or the phantom elsewhere), and measured noise.
        # Either alone is not enough: real kV Leeds images, analysed right, can see no low-contrast
        # ROI at pylinac's default visibility threshold, and Las Vegas phantoms have no line pairs.
        require_plausible(
            [
                (
                    r.num_contrast_rois_seen > 0 or mtf50 is not None,
                    "no low-contrast ROI seen and no line pair resolved (no MTF 50 %):"
                    " no phantom features found",
                )
            ],
            metrics,
        )
        measured: list[tuple[str, float | None, float | None, str, int, str]] = [
            (
                "low-contrast ROIs seen",
                r.num_contrast_rois_seen,
                c.min_low_contrast_rois_seen,
                "",
                0,
                "low-contrast-rois-seen",
            ),
            ("MTF 50 %", mtf50, c.min_mtf50_lp_mm, "lp/mm", 2, "mtf50-lp-mm"),
            ("median contrast", r.median_contrast, c.min_median_contrast, "", 3, "median-contrast"),
            ("median CNR", r.median_cnr, c.min_median_cnr, "", 1, "median-cnr"),
        ]
        limits = [
            Limit(label, value, limit, unit, "min", digits=digits, key=f"planar-imaging.criteria.min-{key}")
            for label, value, limit, unit, digits, key in measured
            if limit is not None
        ]
        return judge(limits, [] if limits else ["no criteria configured (planar-imaging.criteria)"], metrics)
