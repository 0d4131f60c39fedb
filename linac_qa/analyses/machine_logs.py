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
import re
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import Field

from linac_qa.analyses.base import AnalysisType, Claim, GroupContext, Grouped, Inputs, Verdict, from_pylinac
from linac_qa.analyses.criteria import Limit, judge, require_plausible, rounded
from linac_qa.model import Acquisition, AnalysisResult, ClassifiedFile, Metric, Status
from linac_qa.sections import AnalysisSettings, Section

TRAJECTORY_MAGIC = b"VOSTL"
DYNALOG_SUFFIX = ".dlg"
DYNALOG_VERSIONS = frozenset({"A", "B"})  # the first line of a dynalog is its format version
# A trajectory log is named `<patient>_<plan>_<beam>_<YYYYmmddHHMMSS>.bin`; its .txt summary is
# written up to this many seconds later, and may carry that later time in its name.
LOG_TIMESTAMP = re.compile(r"(?P<prefix>.*?)(?P<stamp>\d{14})")
TIMESTAMP_FORMAT = "%Y%m%d%H%M%S"
SUMMARY_DELAY_SECONDS = 2
SUMMARY_HEAD_BYTES = 1024  # a summary names the plan in its first lines, after the patient's ID
UTF8_BOM = b"\xef\xbb\xbf"


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


class MachineLogAnalysis(AnalysisType[MachineLogSettings]):
    section = "machine-logs"
    settings_model = MachineLogSettings
    pylinac_names = ()
    modalities = frozenset()
    accepts_images = False

    def model_name(self, acq: Acquisition, settings: MachineLogSettings) -> str:
        return "TrajectoryLog" if acq.variant.get("kind") == "trajectory" else "Dynalog"

    def claims(self, path: Path, head: bytes) -> Claim | None:
        if head.startswith(TRAJECTORY_MAGIC):
            return Claim("trajectory log (VOSTL header)")
        version, end_of_line = head[:1].decode("latin-1"), head[1:2]
        is_dynalog = version in DYNALOG_VERSIONS and end_of_line in (b"\r", b"\n")
        if path.suffix.lower() == DYNALOG_SUFFIX and is_dynalog:
            return Claim("dynalog")
        if path.suffix.lower() == ".txt" and (_bin_beside(path) is not None or _is_log_summary(path, head)):
            return Claim("trajectory log summary (.txt)")
        return None

    def group(self, files: list[ClassifiedFile], settings: MachineLogSettings, ctx: GroupContext) -> Grouped:
        out = Grouped()
        by_suffix: dict[str, list[str]] = defaultdict(list)
        for cf in files:
            suffix = PurePosixPath(cf.path).suffix.lower()
            by_suffix[suffix if suffix in (DYNALOG_SUFFIX, ".txt") else "trajectory"].append(cf.path)
        # Claimed by their VOSTL header: trajectory logs, whatever their name.
        bins = {rel.lower(): rel for rel in by_suffix["trajectory"]}
        summaries: dict[str, list[str]] = defaultdict(list)  # a .bin of this run: its .txt files
        for rel in by_suffix[".txt"]:
            own = _bin_in(rel, bins)
            if own is not None:
                summaries[own].append(rel)
            else:
                self._lone_summary(rel, ctx, out)
        halves: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
        for rel in by_suffix[DYNALOG_SUFFIX]:
            path = PurePosixPath(rel)
            halves[(str(path.parent), path.name[1:].lower())][path.name[0].upper()] = rel
        for rel in bins.values():
            out.acquisitions.append(_acquisition(ctx, "trajectory", [rel, *sorted(summaries[rel])]))
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
                out.decided.append(AnalysisResult.error(self.section, [rel], reason, model="Dynalog"))
        return out

    def _lone_summary(self, rel: str, ctx: GroupContext, out: Grouped) -> None:
        """A trajectory log's .txt whose .bin is not among this run's files: the .bin was analysed
        earlier (the .txt came later), may still arrive, or is gone. The .txt alone is no QA result:
        it is ignored, saying which."""
        if PurePosixPath(rel).parent.as_posix() in ctx.busy_folders:
            out.waiting += 1  # its .bin may be the file still being written there
            return
        if _bin_beside(ctx.directory / rel) is not None:
            reason = "trajectory log summary (.txt); its .bin was analysed on its own earlier"
        elif ctx.still_waiting([rel]):
            out.waiting += 1
            return
        else:
            reason = f"trajectory log summary (.txt) without its .bin (waited {ctx.wait_seconds / 3600:g} h)"
        out.decided.append(AnalysisResult.ignored(self.section, [rel], reason))

    def check_group(self, acq: Acquisition, settings: MachineLogSettings) -> str | None:
        return None

    def load(self, inputs: Inputs, acq: Acquisition, settings: MachineLogSettings) -> Any:
        # The A file (or the .bin) alone: pylinac finds the B file or the .txt beside it.
        return from_pylinac("log_analyzer.load_log")(str(inputs.paths[0]))

    def run(self, analysed: Any, acq: Acquisition, settings: MachineLogSettings) -> None:
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

    def judge(self, analysed: Any, acq: Acquisition, settings: MachineLogSettings) -> Verdict:
        if _is_imaging(analysed):
            return Verdict(Status.IGNORED, "imaging log: no treatment beam to judge", {"imaging": True})
        return judge_log(
            settings,
            gamma_pass_percent=float(analysed.fluence.gamma.pass_prcnt),
            max_mlc_rms_mm=float(analysed.axis_data.mlc.get_RMS_max()) * 10,  # pylinac reports cm
            treatment_type=str(analysed.treatment_type),
            beam_holds=int(analysed.num_beamholds),
        )

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


def judge_log(
    settings: MachineLogSettings,
    *,
    gamma_pass_percent: float,
    max_mlc_rms_mm: float,
    treatment_type: str,
    beam_holds: int,
) -> Verdict:
    """The verdict on a treatment log's numbers as pylinac measured them. A log has no
    results_data(): these are what a recorded log result keeps, so that it can be judged again."""
    g, tol = settings.gamma, settings.tolerances
    metrics: dict[str, Metric] = {
        "gamma_pass_percent": rounded(gamma_pass_percent, 2),
        "max_mlc_rms_mm": rounded(max_mlc_rms_mm, 3),
        "treatment_type": treatment_type,
        "beam_holds": beam_holds,
    }
    label = f"gamma {g.dose_percent:g}%/{g.distance_mm:g}mm"
    limits = [
        Limit(
            label,
            gamma_pass_percent,
            tol.gamma_pass_percent,
            unit="%",
            kind="min",
            digits=1,
            key="machine-logs.tolerances.gamma-pass-percent",
        ),
        Limit(
            "max MLC RMS", max_mlc_rms_mm, tol.max_mlc_rms_mm, key="machine-logs.tolerances.max-mlc-rms-mm"
        ),
    ]
    return judge(limits, metrics=metrics)


def _is_imaging(log: Any) -> bool:
    return bool(log.treatment_type == from_pylinac("log_analyzer.TreatmentType").IMAGING.value)


def _bin_names(txt_name: str) -> list[str]:
    """The names the .bin of a trajectory log's .txt summary may have: the same, or, as TrueBeam
    writes the .txt a second or two after the .bin, the same with the timestamp at its end that
    much earlier (`..._20150318072855.txt` for `..._20150318072854.bin`)."""
    stem = PurePosixPath(txt_name).stem
    stems = [stem]
    found = LOG_TIMESTAMP.fullmatch(stem)
    if found:
        try:
            written = dt.datetime.strptime(found["stamp"], TIMESTAMP_FORMAT)
        except ValueError:  # fourteen digits that are no date
            written = None
        if written is not None:
            stems += [
                found["prefix"] + (written - dt.timedelta(seconds=s)).strftime(TIMESTAMP_FORMAT)
                for s in range(1, SUMMARY_DELAY_SECONDS + 1)
            ]
    return [s + suffix for s in stems for suffix in (".bin", ".BIN")]


def _bin_in(rel: str, bins: dict[str, str]) -> str | None:
    """The .bin among `bins` (this run's, keyed by lower-case path) that the .txt `rel` goes with."""
    path = PurePosixPath(rel)
    return next(
        (bins[k] for n in _bin_names(path.name) if (k := path.with_name(n).as_posix().lower()) in bins), None
    )


def _bin_beside(path: Path) -> Path | None:
    """The trajectory log on disk that a .txt summary belongs to, when there is one."""
    return next((c for c in map(path.with_name, _bin_names(path.name)) if c.exists()), None)


def _is_log_summary(path: Path, head: bytes) -> bool:
    """The text a TrueBeam writes beside a trajectory log: "Patient ID:", then the plan's name."""
    if not head.removeprefix(UTF8_BOM).startswith(b"Patient ID:"):
        return False
    with path.open("rb") as fp:
        return b"\nPlan Name" in fp.read(SUMMARY_HEAD_BYTES)


def _acquisition(ctx: GroupContext, kind: str, rels: list[str]) -> Acquisition:
    """Named after the log type and the file's date, never after the file (patient identifiers)."""
    first = ctx.directory / rels[0]
    when = dt.datetime.fromtimestamp(first.stat().st_mtime).astimezone()
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
