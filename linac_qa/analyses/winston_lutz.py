"""Winston-Lutz: pylinac has no `passed`, so the CAX-to-BB distance and the isocentre sizes are
judged against the configured limits. A set is a folder, a zip or one session of loose images."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field

from linac_qa.analyses.base import AnalysisType, Grouping, Inputs, Verdict, results_data
from linac_qa.analyses.criteria import Limit, is_number, judge, require_plausible
from linac_qa.history.levels import LevelSpec, relative
from linac_qa.model import Acquisition
from linac_qa.sections import AnalysisSettings, Keyword, Section


class WinstonLutzTolerances(Section):
    max_cax_bb_distance_mm: float = Field(default=1.0, gt=0)
    gantry_iso_size_mm: float = Field(default=1.0, gt=0)
    collimator_iso_size_mm: float = Field(default=1.0, gt=0)
    couch_iso_size_mm: float = Field(default=1.0, gt=0)


class WinstonLutzSettings(AnalysisSettings):
    keywords: list[Keyword] = Field(default_factory=lambda: ["wl", "winston", "lutz", "winston lutz"])
    analysis: dict[str, Any] = Field(default_factory=lambda: {"bb_size_mm": 5})
    tolerances: WinstonLutzTolerances = Field(default_factory=WinstonLutzTolerances)
    levels: dict[str, LevelSpec] = Field(default_factory=lambda: {"max_cax_bb_distance_mm": relative(0.5, 1)})
    min_images: int = Field(default=4, ge=1)
    session_window_minutes: float = Field(default=30, gt=0)


class WinstonLutzAnalysis(AnalysisType[WinstonLutzSettings]):
    section = "winston-lutz"
    settings_model = WinstonLutzSettings
    grouping = Grouping.SESSION
    accepts_images = False  # the gantry, collimator and couch angles come from the DICOM header
    pylinac_names = ("WinstonLutz",)
    # The report's picture: the summary of every image and the isocentre plots.
    report_image_method = "save_summary"

    def session_window(self, settings: WinstonLutzSettings) -> dt.timedelta:
        return dt.timedelta(minutes=settings.session_window_minutes)

    def check_group(self, acq: Acquisition, settings: WinstonLutzSettings) -> str | None:
        if acq.variant.get("images", len(acq.files)) < settings.min_images:
            n = acq.variant.get("images", len(acq.files))
            return f"a Winston-Lutz set needs at least {settings.min_images} images; found {n}"
        return None

    def load(self, inputs: Inputs, acq: Acquisition, settings: WinstonLutzSettings) -> Any:
        return self.pylinac_class(acq, settings)([str(p) for p in inputs.paths])

    def judge(self, analysed: Any, acq: Acquisition, settings: WinstonLutzSettings) -> Verdict:
        r = results_data(analysed)
        tol = settings.tolerances
        shift = r.bb_shift_vector
        metrics = {
            "max_cax_bb_distance_mm": round(r.max_2d_cax_to_bb_mm, 3),
            "median_cax_bb_distance_mm": round(r.median_2d_cax_to_bb_mm, 3),
            "gantry_iso_size_mm": round(r.gantry_3d_iso_diameter_mm, 3),
            "collimator_iso_size_mm": round(r.coll_2d_iso_diameter_mm, 3),
            "couch_iso_size_mm": round(r.couch_2d_iso_diameter_mm, 3),
            "images": r.num_total_images,
            "bb_shift_x_mm": round(shift.x, 3),
            "bb_shift_y_mm": round(shift.y, 3),
            "bb_shift_z_mm": round(shift.z, 3),
        }
        given = acq.variant.get("images", len(acq.files))
        # pylinac raises when it finds no BB; a BB "found" without a position is no better.
        lost = [
            i + 1
            for i, d in enumerate(r.image_details)
            if not (
                is_number(d.bb_location.x) and is_number(d.bb_location.y) and is_number(d.cax2bb_distance)
            )
        ]
        require_plausible(
            [
                (r.num_total_images == given, f"{r.num_total_images} of {given} images analysed"),
                (not lost, f"no BB position in image(s) {', '.join(map(str, lost))}"),
            ],
            metrics,
        )
        limits = [
            Limit(
                "max CAX-BB",
                r.max_2d_cax_to_bb_mm,
                tol.max_cax_bb_distance_mm,
                key="winston-lutz.tolerances.max-cax-bb-distance-mm",
            )
        ]
        notes = []
        # An isocentre size needs at least two images that vary that axis alone.
        for label, value, count, limit, key in (
            (
                "gantry iso size",
                r.gantry_3d_iso_diameter_mm,
                r.num_gantry_images,
                tol.gantry_iso_size_mm,
                "gantry",
            ),
            (
                "collimator iso size",
                r.coll_2d_iso_diameter_mm,
                r.num_coll_images,
                tol.collimator_iso_size_mm,
                "collimator",
            ),
            (
                "couch iso size",
                r.couch_2d_iso_diameter_mm,
                r.num_couch_images,
                tol.couch_iso_size_mm,
                "couch",
            ),
        ):
            if count >= 2:
                limits.append(Limit(label, value, limit, key=f"winston-lutz.tolerances.{key}-iso-size-mm"))
            else:
                notes.append(f"{label} not judged ({count} image{'s' if count != 1 else ''})")
        return judge(limits, notes, metrics)

    def save_image(self, analysed: Any, path: Any) -> None:
        analysed.save_summary(str(path))
