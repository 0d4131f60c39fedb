"""Machine logs: Varian dynalogs (an A and a B file per beam) and TrueBeam trajectory logs (a `.bin`,
with an optional `.txt` companion). Recognised by content, never by keywords, and each log is
handed to pylinac as its own file: pylinac takes any file whose first bytes hold "A" or "B" for a
dynalog, so the watched folder is never given to it whole.

Log file names and headers carry patient identifiers, so outputs are named after the log type and
its date, and reasons hold numbers only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import Field
from pylinac.log_analyzer import TreatmentType, load_log

from linac_qa.analyses.base import AnalysisType, GroupContext, Grouped, Inputs, Verdict
from linac_qa.criteria import Limit, judge, require_plausible, rounded
from linac_qa.model import Acquisition, AnalysisResult, ClassifiedFile, Metric, Status
from linac_qa.sections import AnalysisSettings, Section

TRAJECTORY_MAGIC = b"VOSTL"
DYNALOG_SUFFIX = ".dlg"
DYNALOG_VERSIONS = frozenset({"A", "B"})  # the first line of a dynalog is its format version


class GammaSettings(Section):
    dose_percent: float = Field(default=1.0, gt=0)
    distance_mm: float = Field(default=1.0, gt=0)
    threshold: float = Field(default=0.1, ge=0, lt=1)
    resolution: float = Field(default=0.1, gt=0)  # pylinac's gamma map resolution, as it takes it


class LogTolerances(Section):
    gamma_pass_percent: float = Field(default=95.0, ge=0, le=100)
    max_mlc_rms_mm: float = Field(default=1.0, gt=0)


class MachineLogSettings(AnalysisSettings):
    gamma: GammaSettings = Field(default_factory=GammaSettings)
    tolerances: LogTolerances = Field(default_factory=LogTolerances)


class MachineLogAnalysis(AnalysisType):
    section = "machine-logs"
    settings_model = MachineLogSettings
    pylinac_classes = ()
    modalities = frozenset()
    accepts_images = False

    def model_name(self, acq: Acquisition, settings: AnalysisSettings) -> str:
        return "TrajectoryLog" if acq.variant.get("kind") == "trajectory" else "Dynalog"

    def claims(self, path: Path, head: bytes) -> str | None:
        if head.startswith(TRAJECTORY_MAGIC):
            return "trajectory log (VOSTL header)"
        version, end_of_line = head[:1].decode("latin-1"), head[1:2]
        is_dynalog = version in DYNALOG_VERSIONS and end_of_line in (b"\r", b"\n")
        if path.suffix.lower() == DYNALOG_SUFFIX and is_dynalog:
            return "dynalog"
        if path.suffix.lower() == ".txt" and _bin_beside(path) is not None:
            return "trajectory log companion (.txt)"
        return None

    def group(self, files: list[ClassifiedFile], settings: AnalysisSettings, ctx: GroupContext) -> Grouped:
        out = Grouped()
        rels = {cf.path for cf in files}
        halves: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
        for cf in files:
            path = PurePosixPath(cf.path)
            if path.suffix.lower() == DYNALOG_SUFFIX:
                halves[(str(path.parent), path.name[1:].lower())][path.name[0].upper()] = cf.path
            elif path.suffix.lower() == ".bin":
                txt = str(path.with_suffix(".txt"))
                companion = next((r for r in rels if r.lower() == txt.lower()), None)
                out.acquisitions.append(
                    _acquisition(ctx, "trajectory", [cf.path, *([companion] if companion else [])])
                )
            elif not _companion_in_run(ctx.directory, cf.path, rels):
                out.decided.append(
                    AnalysisResult(
                        analysis=self.section,
                        model=None,
                        files=[cf.path],
                        status=Status.IGNORED,
                        reason="trajectory log companion; its .bin was analysed on its own earlier",
                    )
                )
        for pair in halves.values():
            if {"A", "B"} <= pair.keys():
                out.acquisitions.append(_acquisition(ctx, "dynalog", [pair["A"], pair["B"]]))
                continue
            (side, rel), *_ = pair.items()
            missing = "B" if side == "A" else "A"
            if ctx.still_waiting([rel]):
                out.waiting += 1
            else:
                reason = (
                    f"dynalog {side} file without its {missing} file (waited {ctx.wait_seconds / 3600:g} h)"
                )
                out.decided.append(
                    AnalysisResult(
                        analysis=self.section,
                        model="Dynalog",
                        files=[rel],
                        status=Status.ERROR,
                        reason=reason,
                    )
                )
        return out

    def check_group(self, acq: Acquisition, settings: AnalysisSettings) -> str | None:
        return None

    def load(self, inputs: Inputs, acq: Acquisition, settings: AnalysisSettings) -> Any:
        # The A file (or the .bin) alone: pylinac finds the B file or the .txt beside it.
        return load_log(str(inputs.paths[0]))

    def run(self, analysed: Any, acq: Acquisition, settings: AnalysisSettings) -> None:
        assert isinstance(settings, MachineLogSettings)
        if _is_imaging(analysed):
            return
        mlc = analysed.axis_data.mlc
        # Checked before the gamma, which pylinac cannot even set up without MLC snapshots (and
        # whose max RMS it then reports as 0 rather than as not measured).
        require_plausible(
            [
                (mlc.num_leaves > 0, "no MLC leaves in the log"),
                (mlc.num_snapshots > 0, "no MLC data with the beam on (every snapshot is beam-off)"),
            ],
            {"treatment_type": str(analysed.treatment_type)},
        )
        g = settings.gamma
        analysed.fluence.gamma.calc_map(
            doseTA=g.dose_percent, distTA=g.distance_mm, threshold=g.threshold, resolution=g.resolution
        )

    def judge(self, analysed: Any, acq: Acquisition, settings: AnalysisSettings) -> Verdict:
        assert isinstance(settings, MachineLogSettings)
        if _is_imaging(analysed):
            return Verdict(Status.IGNORED, "imaging log: no treatment beam to judge", {"imaging": True})
        g, tol = settings.gamma, settings.tolerances
        gamma = float(analysed.fluence.gamma.pass_prcnt)
        rms_mm = float(analysed.axis_data.mlc.get_RMS_max()) * 10  # pylinac reports cm
        metrics: dict[str, Metric] = {
            "gamma_pass_percent": rounded(gamma, 2),
            "max_mlc_rms_mm": rounded(rms_mm, 3),
            "treatment_type": str(analysed.treatment_type),
            "beam_holds": int(analysed.num_beamholds),
        }
        label = f"gamma {g.dose_percent:g}%/{g.distance_mm:g}mm"
        limits = [
            Limit(
                label,
                gamma,
                tol.gamma_pass_percent,
                unit="%",
                kind="min",
                digits=1,
                key="machine-logs.tolerances.gamma-pass-percent",
            ),
            Limit("max MLC RMS", rms_mm, tol.max_mlc_rms_mm, key="machine-logs.tolerances.max-mlc-rms-mm"),
        ]
        return judge(limits, metrics=metrics)

    def results_text(self, analysed: Any) -> str:
        lines = [f"Log type: {type(analysed).__name__}", f"Treatment type: {analysed.treatment_type}"]
        if not _is_imaging(analysed):
            lines += [
                f"Gamma pass rate: {analysed.fluence.gamma.pass_prcnt:.2f} %",
                f"Max MLC RMS: {analysed.axis_data.mlc.get_RMS_max() * 10:.3f} mm",
                f"Beam holds: {analysed.num_beamholds}",
            ]
        return "\n".join(lines) + "\n"

    def results_json(self, analysed: Any) -> Any:
        # pylinac's logs have no results_data(); the header (patient identifiers) is left out on purpose.
        return {"log_type": type(analysed).__name__, "treatment_type": str(analysed.treatment_type)}

    def save_image(self, analysed: Any, path: Path) -> None:
        analysed.save_summary(str(path))


def _is_imaging(log: Any) -> bool:
    return bool(log.treatment_type == TreatmentType.IMAGING.value)


def _bin_beside(path: Path) -> Path | None:
    """The trajectory log a .txt companion belongs to, when there is one."""
    return next((c for c in (path.with_suffix(".bin"), path.with_suffix(".BIN")) if c.exists()), None)


def _companion_in_run(directory: Path, rel: str, rels: set[str]) -> bool:
    """True when the companion's .bin is among this run's files (so it is analysed with it)."""
    found = _bin_beside(directory / rel)
    return found is not None and found.relative_to(directory).as_posix() in rels


def _acquisition(ctx: GroupContext, kind: str, rels: list[str]) -> Acquisition:
    """Named after the log type and the file's date, never after the file (patient identifiers)."""
    first = ctx.directory / rels[0]
    when = dt.datetime.fromtimestamp(first.stat().st_mtime)
    title, prefix = ("Trajectory log", "TrajectoryLog") if kind == "trajectory" else ("Dynalog", "Dynalog")
    tag = hashlib.sha256(rels[0].encode()).hexdigest()[:6]  # two logs of one second stay apart
    folder = PurePosixPath(rels[0]).parent
    return Acquisition(
        analysis="machine-logs",
        files=tuple(rels),
        name=f"{title} {when:%Y-%m-%d %H:%M:%S}",
        output_stem=str(folder / f"{prefix}_{when:%Y%m%d_%H%M%S}_{tag}"),
        acquired=when,
        variant={"kind": kind},
    )
