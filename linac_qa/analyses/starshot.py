"""Starshot: pylinac's `passed` (wobble diameter within tolerance). Film scans and other images
without an SID tag are analysed at `film-sid-mm`."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from linac_qa.analyses.base import AnalysisType, Inputs, Verdict, results_data
from linac_qa.analyses.criteria import Limit, expected_count, judge, require_plausible
from linac_qa.model import Acquisition, ClassifiedFile
from linac_qa.sections import AnalysisSettings, Keyword

# Fewer lines than this cannot define a wobble circle.
MIN_SPOKES = 3


class StarshotSettings(AnalysisSettings):
    keywords: list[Keyword] = Field(default_factory=lambda: ["star", "starshot"])
    analysis: dict[str, Any] = Field(default_factory=lambda: {"radius": 0.8, "tolerance": 1.0})
    film_sid_mm: float = Field(default=1000, gt=0)
    # How many lines through the centre the clinic's starshot has, as pylinac counts them (a beam
    # and its opposite are one line): any other count found is implausible. null: at least 3.
    expected_spokes: int | None = Field(default=None, ge=MIN_SPOKES)


class StarshotAnalysis(AnalysisType[StarshotSettings]):
    section = "starshot"
    settings_model = StarshotSettings
    pylinac_names = ("Starshot",)

    def variant(self, file: ClassifiedFile, settings: StarshotSettings) -> dict[str, Any]:
        return {} if file.header is not None and file.header.has_sid else {"film": True}

    def load(self, inputs: Inputs, acq: Acquisition, settings: StarshotSettings) -> Any:
        extra = {"sid": settings.film_sid_mm} if acq.variant.get("film") else {}
        return self.pylinac_class(acq, settings)(str(inputs.single), **extra)

    def judge(self, analysed: Any, acq: Acquisition, settings: StarshotSettings) -> Verdict:
        r = results_data(analysed)
        metrics = {
            "wobble_diameter_mm": round(r.circle_diameter_mm, 3),
            "tolerance_mm": r.tolerance_mm,
            "spokes": len(r.angles),
            "center_to_reference_mm": round(r.reference_to_isocenter_distance_mm, 3)
            if r.reference_to_isocenter_distance_mm is not None
            else None,
        }
        spokes = expected_count(
            "spokes", len(r.angles), settings.expected_spokes, MIN_SPOKES, "starshot.expected-spokes"
        )
        require_plausible([spokes], metrics)
        return judge(
            [
                Limit(
                    "wobble diameter",
                    r.circle_diameter_mm,
                    r.tolerance_mm,
                    ok=r.passed,
                    key="starshot.analysis.tolerance",
                )
            ],
            ["film: SID taken as film-sid-mm"] if acq.variant.get("film") else [],
            metrics,
        )
