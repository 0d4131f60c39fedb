"""Open-field flatness and symmetry (pylinac FieldAnalysis): of an EPID image or film, or of a Sun
Nuclear IC PROFILER's measurement (DeviceFieldAnalysis), recognised by its content. FFF beams,
recognised by keyword, are analysed with is_FFF and their flatness is not judged."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from linac_qa.analyses.base import (
    AnalysisType,
    Claim,
    Inputs,
    VariantChecks,
    Verdict,
    from_pylinac,
    results_data,
    strict_bool,
)
from linac_qa.analyses.criteria import Limit, is_number, judge, require_plausible, rounded
from linac_qa.history.levels import LevelSpec, relative
from linac_qa.intake.keywords import any_match
from linac_qa.model import Acquisition, ClassifiedFile
from linac_qa.sections import AnalysisSettings, Keyword, Section

# A Profiler export (.prm, .prs, .txt) begins "Version:" and names the collector within its first
# lines; nothing else is read from a file that does not begin so.
PROFILER_START = b"Version:"
PROFILER_COLLECTOR = re.compile(
    rb"^Collector Model:[ \t]*([^\r\n]*PROFILER[^\r\n]*)", re.MULTILINE | re.IGNORECASE
)
PROFILER_HEAD_BYTES = 4096
# The protocol's results the criteria use (pylinac's VARIAN protocol names them so).
PROTOCOL_VALUES = ("symmetry_horizontal", "symmetry_vertical", "flatness_horizontal", "flatness_vertical")


class FieldTolerances(Section):
    symmetry_percent: float = Field(default=2.0, gt=0)
    flatness_percent: float = Field(default=3.0, gt=0)


class FieldAnalysisSettings(AnalysisSettings):
    reserved_analysis_keys: ClassVar[dict[str, str]] = {"is_FFF": "by fff-keywords"}

    keywords: list[Keyword] = Field(default_factory=lambda: ["open field", "flatness", "symmetry", "profile"])
    fff_keywords: list[Keyword] = Field(default_factory=lambda: ["fff"])
    analysis: dict[str, Any] = Field(default_factory=lambda: {"protocol": "VARIAN"})
    tolerances: FieldTolerances = Field(default_factory=FieldTolerances)
    levels: dict[str, LevelSpec] = Field(
        default_factory=lambda: {f"{name}_percent": relative(1, 2) for name in PROTOCOL_VALUES}
    )


class FieldAnalysisType(AnalysisType[FieldAnalysisSettings]):
    section = "field-analysis"
    settings_model = FieldAnalysisSettings
    pylinac_names = ("FieldAnalysis", "field_analysis.DeviceFieldAnalysis")
    variant_options: ClassVar[VariantChecks] = {"fff": strict_bool}

    def claims(self, path: Path, head: bytes) -> Claim | None:
        if not head.startswith(PROFILER_START):
            return None
        with path.open("rb") as fp:
            found = PROFILER_COLLECTOR.search(fp.read(PROFILER_HEAD_BYTES))
        if found is None:
            return None
        model = found[1].decode("cp437").strip()
        return Claim(f"Sun Nuclear Profiler data ({model}), by content", {"device": "PROFILER"})

    def variant(self, file: ClassifiedFile, settings: FieldAnalysisSettings) -> dict[str, Any]:
        return {"fff": True} if any_match(settings.fff_keywords, file.texts) else {}

    def pylinac_name(self, acq: Acquisition, settings: FieldAnalysisSettings) -> str:
        return self.pylinac_names[1 if acq.variant.get("device") else 0]

    def load(self, inputs: Inputs, acq: Acquisition, settings: FieldAnalysisSettings) -> Any:
        device = acq.variant.get("device")
        if not device:
            return self.pylinac_class(acq, settings)(str(inputs.single))
        try:
            return self.pylinac_class(acq, settings)(
                str(inputs.single), device=from_pylinac("field_analysis.Device")[device]
            )
        except (IndexError, ValueError) as exc:  # pylinac reads fixed rows and columns
            raise ValueError(
                "not in the layout pylinac reads (an IC PROFILER multi-frame .prm): "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def analyze_kwargs(self, acq: Acquisition, settings: FieldAnalysisSettings) -> dict[str, Any]:
        return {**super().analyze_kwargs(acq, settings), "is_FFF": bool(acq.variant.get("fff"))}

    def judge(self, analysed: Any, acq: Acquisition, settings: FieldAnalysisSettings) -> Verdict:
        r = results_data(analysed)
        p = {name: r.protocol_results.get(name) for name in PROTOCOL_VALUES}
        tol = settings.tolerances
        fff = bool(acq.variant.get("fff"))
        metrics = {
            **{f"{name}_percent": rounded(value, 3) for name, value in p.items()},
            "field_size_horizontal_mm": rounded(r.field_size_horizontal_mm, 2),
            "field_size_vertical_mm": rounded(r.field_size_vertical_mm, 2),
            "fff": fff,
        }
        sizes = (r.field_size_horizontal_mm, r.field_size_vertical_mm)
        # An FFF beam's flatness is not judged: it need not be measured either.
        unmeasured = [n for n, v in p.items() if not is_number(v) and not (fff and n.startswith("flatness"))]
        require_plausible(
            [
                (all(is_number(s) and s > 0 for s in sizes), "no field found (field size not measured)"),
                (not unmeasured, f"{', '.join(unmeasured)} not measured"),
            ],
            metrics,
        )
        sym = max(abs(p["symmetry_horizontal"]), abs(p["symmetry_vertical"]))
        limits = [
            Limit(
                "symmetry",
                sym,
                tol.symmetry_percent,
                unit="%",
                key="field-analysis.tolerances.symmetry-percent",
            )
        ]
        notes = []
        if fff:
            notes.append("FFF beam: flatness not judged")
        else:
            flat = max(abs(p["flatness_horizontal"]), abs(p["flatness_vertical"]))
            limits.append(
                Limit(
                    "flatness",
                    flat,
                    tol.flatness_percent,
                    unit="%",
                    key="field-analysis.tolerances.flatness-percent",
                )
            )
        return judge(limits, notes, metrics)
