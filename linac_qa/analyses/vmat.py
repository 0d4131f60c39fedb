"""VMAT tests (DRGS, DRMLC, DRCS): an open-field image and a DMLC image, paired by folder, series or
acquisition time, in either order (pylinac tells them apart). A lone image waits for its partner
for `general.group-wait-hours`, then is an error. Pass/fail is pylinac's own `passed`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import Field
from pylinac import DRGS, DRMLC
from pylinac.vmat import DRCS

from linac_qa.analyses.base import (
    AnalysisType,
    GroupContext,
    Grouped,
    Grouping,
    Inputs,
    Verdict,
    results_data,
)
from linac_qa.criteria import Limit, judge
from linac_qa.keywords import best_match
from linac_qa.model import Acquisition, AnalysisResult, ClassifiedFile, Status
from linac_qa.sections import AnalysisSettings
from linac_qa.sessions import session_acquisitions

TESTS: dict[str, Any] = {"DRGS": DRGS, "DRMLC": DRMLC, "DRCS": DRCS}
PAIR = 2


class VMATSettings(AnalysisSettings):
    keywords: list[str] = Field(default_factory=lambda: ["vmat", "drgs", "drmlc", "drcs"])
    test: Literal["DRGS", "DRMLC", "DRCS"] = "DRGS"  # when only "vmat" names the test
    analysis: dict[str, Any] = Field(default_factory=lambda: {"tolerance": 1.5})
    session_window_minutes: float = Field(default=30, gt=0)


class VMATAnalysis(AnalysisType):
    section = "vmat"
    settings_model = VMATSettings
    grouping = Grouping.SESSION
    accepts_images = False
    pylinac_classes = (DRGS, DRMLC, DRCS)

    def pylinac_class(self, acq: Acquisition, settings: AnalysisSettings) -> Any:
        assert isinstance(settings, VMATSettings)
        return TESTS[acq.variant.get("test", settings.test)]

    def session_window(self, settings: AnalysisSettings) -> dt.timedelta:
        assert isinstance(settings, VMATSettings)
        return dt.timedelta(minutes=settings.session_window_minutes)

    def group(self, files: list[ClassifiedFile], settings: AnalysisSettings, ctx: GroupContext) -> Grouped:
        out = Grouped()
        by_path = {cf.path: cf for cf in files}
        sessions = session_acquisitions(
            self.section, files, window=self.session_window(settings), unit=ctx.unit
        )
        for acq in sessions:
            members = [by_path[f] for f in acq.files]
            if len(members) == 1 and ctx.still_waiting(list(acq.files)):
                out.waiting += 1
                continue
            if len(members) == 1:
                waited = f"{ctx.wait_seconds / 3600:g} h"
                reason = f"a VMAT test needs an open and a DMLC image; no partner arrived in {waited}"
                out.decided.append(
                    AnalysisResult(
                        analysis=self.section,
                        model=None,
                        files=list(acq.files),
                        status=Status.ERROR,
                        reason=reason,
                    )
                )
                continue
            test = _test_of(members)
            out.acquisitions.append(
                acq.model_copy(update={"variant": {**acq.variant, **({"test": test} if test else {})}})
            )
        return out

    def check_group(self, acq: Acquisition, settings: AnalysisSettings) -> str | None:
        images = acq.variant.get("images", len(acq.files))
        return (
            None if images == PAIR else f"a VMAT test is one open and one DMLC image; found {images} images"
        )

    def load(self, inputs: Inputs, acq: Acquisition, settings: AnalysisSettings) -> Any:
        return self.pylinac_class(acq, settings)(image_paths=[str(p) for p in inputs.paths])

    def judge(self, analysed: Any, acq: Acquisition, settings: AnalysisSettings) -> Verdict:
        r = results_data(analysed)
        status, reason = judge(
            [
                Limit(
                    "max segment deviation",
                    abs(r.max_deviation_percent),
                    r.tolerance_percent,
                    unit="%",
                    ok=r.passed,
                )
            ]
        )
        metrics = {
            "max_deviation_percent": round(float(r.max_deviation_percent), 3),
            "abs_mean_deviation_percent": round(float(r.abs_mean_deviation), 3),
            "tolerance_percent": r.tolerance_percent,
            "segments": len(r.segment_data),
        }
        return Verdict(status, reason, metrics)

    def save_image(self, analysed: Any, path: Path) -> None:
        # pylinac's VMAT classes have no save_analyzed_image: save the figure they plot.
        import matplotlib.pyplot as plt

        analysed.plot_analyzed_image(show=False)
        plt.savefig(str(path))


def _test_of(members: list[ClassifiedFile]) -> str | None:
    texts = [
        t for cf in members for t in (PurePosixPath(cf.path).name, *(cf.header.texts if cf.header else ()))
    ]
    match = best_match(texts, [(name, name.lower()) for name in TESTS])
    return match[0] if match else None
