"""Varian Machine Performance Check (MPC) results: the `Results.csv` that a TrueBeam or Halcyon writes
for each check under its TDS share, in a folder named `NDS-WKS-SN<serial>-<date>-<time>-<n>-<check>`
(`HAL-TRT-...` on a Halcyon). Bring the TDS folder in as a `general.sources` entry.

- Recognised by content: a `Results.csv` whose header row starts with `Name [Unit]`. Its columns
  (value, threshold, evaluation) are read by their header names, so a layout that adds or reorders
  columns reads the same. A Halcyon leaves the threshold and evaluation of some rows blank: those rows
  are measured, not judged.
- One result per check. Every row is a metric (`beamgroup_beamoutputchange_pct`); the `.json` keeps
  each row's name, value, unit, Varian's threshold and Pass/Fail, the per-leaf MLC rows included,
  which are not metrics (120 trend lines of one check would drown the rest).
- The verdict is Varian's own evaluation: a row evaluated "Fail" fails its check, named in the
  reason; a check with no evaluated row is "not judged".
- The serial in the folder name is mapped to the machine (`mpc.machines`); the beam and geometry
  checks of one serial that follow each other within `session-minutes` are one morning's session,
  named alike and analysed in the same run (a session is held back until it has been quiet that long).
- Other files of a check folder (the `.xim` images, `Check.xml`) are accounted for as one ignored
  result per folder: what they measured is in the `Results.csv`.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from pydantic import Field, field_validator

from linac_qa.analyses.base import AnalysisType, Claim, GroupContext, Grouped, Inputs, close_figures
from linac_qa.analyses.criteria import Verdict, require_plausible
from linac_qa.model import Acquisition, AnalysisResult, ClassifiedFile, Status
from linac_qa.sections import AnalysisSettings

SECTION = "mpc"
RESULTS_NAME = "results.csv"
HEADER_START = "name [unit]"
UTF8_BOM = b"\xef\xbb\xbf"
# `NDS-WKS-SN1234-2020-11-06-09-59-21-0009-GeometryCheckTemplate6xMVkV`
FOLDER = re.compile(
    r"^(?P<station>[A-Za-z]+-[A-Za-z]+)-SN(?P<serial>[A-Za-z0-9]+)-"
    r"(?P<when>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})-(?P<seq>\d+)-(?P<check>[A-Za-z0-9_]+)$"
)
FOLDER_TIME = "%Y-%m-%d-%H-%M-%S"
# `BeamGroup/BeamOutputChange [%]`
ROW_NAME = re.compile(r"^(?P<path>.*?)\s*\[(?P<unit>[^\]]*)\]\s*$")
# Rows of single leaves: `CollimationGroup/MLCGroup/MLCLeavesA/MLCLeaf12 [mm]` and the backlash ones.
PER_LEAF = re.compile(r"Leaves[AB]/", re.IGNORECASE)
UNIT_TOKENS = {"mm": "mm", "%": "pct", "°": "deg", "deg": "deg", "cm": "cm", "": ""}


class MPCSettings(AnalysisSettings):
    # MPC writes its serial into every folder name: that, not a keyword, says which linac it was.
    machines: dict[str, str] = Field(default_factory=dict)  # serial -> machine (unit) name
    session_minutes: float = Field(default=20.0, gt=0, le=24 * 60)

    @field_validator("machines", mode="before")
    @classmethod
    def _serials_as_text(cls, value: Any) -> Any:
        # YAML reads `1234: TrueBeam1` with a number for a key: the serial is a name, not a number.
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value


@dataclass(frozen=True)
class Row:
    name: str  # as Varian writes it, with its unit: `BeamGroup/BeamOutputChange [%]`
    key: str  # the metric's name: `beamgroup_beamoutputchange_pct`
    value: float | None
    unit: str
    threshold: float | None
    evaluation: str | None  # "Pass", "Fail", or None where Varian evaluated nothing (Halcyon)
    per_leaf: bool


@dataclass(frozen=True)
class CheckFolder:
    serial: str
    when: dt.datetime
    check: str

    @property
    def enhanced(self) -> bool:
        return "enhanced" in self.check.lower()


@dataclass(frozen=True)
class MPCResults:
    """What load() gives: the check's rows, for judge() and the outputs."""

    check: str
    serial: str
    rows: list[Row]
    layout: list[str]  # the header row as written


def parse_folder(name: str) -> CheckFolder | None:
    found = FOLDER.match(name)
    if found is None:
        return None
    try:
        when = dt.datetime.strptime(found["when"], FOLDER_TIME)
    except ValueError:
        return None
    return CheckFolder(found["serial"], when, found["check"])


def decode(raw: bytes) -> str:
    """UTF-8 (with or without BOM), else the Windows code page the MPC workstation may write `°` in."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252")


def parse_results(text: str) -> tuple[list[str], list[Row]]:
    """The header and every row of a Results.csv. Raises ValueError when it is none."""
    import csv

    lines = [
        line for line in csv.reader(io.StringIO(text), skipinitialspace=True) if any(c.strip() for c in line)
    ]
    if not lines or not lines[0][0].strip().lower().startswith(HEADER_START):
        raise ValueError("not an MPC Results.csv: its first row is not 'Name [Unit], Value, Threshold, ...'")
    header = [h.strip() for h in lines[0]]
    value_col = _column(header, "value")
    threshold_col = _column(header, "threshold")
    evaluation_col = _column(header, "evaluation", "result")
    rows = []
    for cells in lines[1:]:
        cells = [c.strip() for c in cells]
        name = cells[0]
        found = ROW_NAME.match(name)
        path, unit = (found["path"], found["unit"].strip()) if found else (name, "")
        evaluation = _cell(cells, evaluation_col).capitalize() or None
        rows.append(
            Row(
                name=name,
                key=metric_key(path, unit),
                value=_number(_cell(cells, value_col)),
                unit=unit,
                threshold=_number(_cell(cells, threshold_col)),
                evaluation=evaluation,
                per_leaf=bool(PER_LEAF.search(path)),
            )
        )
    return header, rows


def metric_key(path: str, unit: str) -> str:
    """`BeamGroup/BeamOutputChange` and `%` -> `beamgroup_beamoutputchange_pct` (as QATrack+'s MPC
    pump names them, so the two stay comparable)."""
    token = UNIT_TOKENS.get(unit.lower(), re.sub(r"[^0-9a-z]+", "", unit.lower()))
    base = re.sub(r"[^0-9A-Za-z]+", "_", path).strip("_").lower()
    return f"{base}_{token}" if token else base


def _column(header: list[str], *words: str) -> int | None:
    return next((i for i, h in enumerate(header) if i and any(w in h.lower() for w in words)), None)


def _cell(cells: list[str], col: int | None) -> str:
    return cells[col] if col is not None and col < len(cells) else ""


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class MPCAnalysis(AnalysisType[MPCSettings]):
    section = SECTION
    settings_model = MPCSettings
    pylinac_names = ()
    modalities = frozenset()
    accepts_images = False

    def model_name(self, acq: Acquisition, settings: MPCSettings) -> str | None:  # type: ignore[override]
        return None  # no pylinac class: Varian's own evaluation (the summary's `model` is null)

    # ------------------------------------------------------------------ recognise
    def claims(self, path: Path, head: bytes) -> Claim | None:
        if path.name.lower() == RESULTS_NAME:
            if head.removeprefix(UTF8_BOM)[: len(HEADER_START)].lower() == HEADER_START.encode():
                return Claim("Varian MPC results (Results.csv)", {"role": "results"})
            return None
        if parse_folder(path.parent.name) is not None:
            return Claim("file of a Varian MPC check folder", {"role": "part"})
        return None

    # ------------------------------------------------------------------ group
    def group(self, files: list[ClassifiedFile], settings: MPCSettings, ctx: GroupContext) -> Grouped:
        out = Grouped()
        parts: dict[str, list[str]] = defaultdict(list)
        checks: list[tuple[str, CheckFolder]] = []
        for cf in files:
            folder = PurePosixPath(cf.path).parent
            if cf.variant.get("role") != "results":
                parts[folder.as_posix()].append(cf.path)
                continue
            check = parse_folder(folder.name)
            if check is None:
                why = (
                    "Varian MPC results in a folder not named as MPC names it (NDS-WKS-SN<serial>-"
                    f"<date>-<time>-<n>-<check>): '{folder.name}'; serial and check unknown"
                )
                out.decided.append(AnalysisResult.error(SECTION, [cf.path], why))
            elif settings.machines and check.serial not in settings.machines:
                known = ", ".join(sorted(settings.machines))
                why = f"MPC serial {check.serial} is not in mpc.machines (serials there: {known})"
                out.decided.append(AnalysisResult.error(SECTION, [cf.path], why))
            else:
                checks.append((cf.path, check))
        for posix, rels in parts.items():
            why = f"part of the MPC check '{PurePosixPath(posix).name}': judged through its Results.csv"
            out.decided.append(AnalysisResult.ignored(SECTION, sorted(rels), why))
        for session in sessions(checks, dt.timedelta(minutes=settings.session_minutes)):
            if (
                ctx.now - max((ctx.directory / rel).stat().st_mtime for rel, _ in session)
                < settings.session_minutes * 60
            ):
                out.waiting += len(session)  # the morning's checks may not all be written yet
                continue
            label = _session_label(session[0][1], settings)
            out.acquisitions += [_acquisition(rel, check, label, settings, ctx) for rel, check in session]
        return out

    def check_group(self, acq: Acquisition, settings: MPCSettings) -> str | None:
        return None

    # ------------------------------------------------------------------ analyse
    def load(self, inputs: Inputs, acq: Acquisition, settings: MPCSettings) -> MPCResults:
        header, rows = parse_results(decode(inputs.single.read_bytes()))
        return MPCResults(check=acq.variant["check"], serial=acq.variant["serial"], rows=rows, layout=header)

    def run(self, analysed: Any, acq: Acquisition, settings: MPCSettings) -> None:
        require_plausible([(bool(analysed.rows), "the Results.csv has no result rows")])

    def judge(self, analysed: Any, acq: Acquisition, settings: MPCSettings) -> Verdict:
        return judge_rows(analysed.rows)

    def results_text(self, analysed: Any) -> str:
        lines = [f"Varian MPC {analysed.check} (serial {analysed.serial})", ""]
        width = max(len(r.name) for r in analysed.rows)
        for r in analysed.rows:
            value = "-" if r.value is None else f"{r.value:g}"
            threshold = "-" if r.threshold is None else f"{r.threshold:g}"
            lines.append(f"{r.name:<{width}}  {value:>10}  {threshold:>9}  {r.evaluation or 'not evaluated'}")
        return "\n".join(lines) + "\n"

    def results_json(self, analysed: Any) -> Any:
        return {
            "check": analysed.check,
            "serial": analysed.serial,
            "columns": analysed.layout,
            "rows": [asdict(r) for r in analysed.rows],
        }

    def write_report(self, analysed: Any, pdf: BinaryIO, png: Path) -> None:
        """A chart of each evaluated row's value as a fraction of Varian's threshold: the PDF's
        page after ours, and the PNG."""
        figure = _chart(analysed)
        try:
            figure.savefig(pdf, format="pdf")
            figure.savefig(png, format="png", dpi=100)
        finally:
            close_figures()


def judge_rows(rows: list[Row]) -> Verdict:
    """Varian's evaluation, row by row: a failing row fails the check and is named in the reason."""
    metrics: dict[str, float | None] = {r.key: r.value for r in rows if not r.per_leaf}
    evaluated = [r for r in rows if r.evaluation in ("Pass", "Fail")]
    failing = [r for r in evaluated if r.evaluation == "Fail"]
    unevaluated = len(rows) - len(evaluated)
    not_evaluated = f"; {unevaluated} row(s) without Varian's evaluation (not judged)" if unevaluated else ""
    if failing:
        reason = "; ".join(_describe(r) for r in failing)
        return Verdict(Status.FAILED, reason + not_evaluated, dict(metrics), judged=True)
    if not evaluated:
        return Verdict(
            Status.PASSED, f"not judged: none of the {len(rows)} rows has Varian's evaluation", dict(metrics)
        )
    reason = f"all {len(evaluated)} evaluated rows pass Varian's thresholds{not_evaluated}"
    return Verdict(Status.PASSED, reason, dict(metrics), judged=True)


def _describe(r: Row) -> str:
    unit = f" {r.unit}" if r.unit else ""
    value = "no value" if r.value is None else f"{r.value:g}{unit}"
    limit = "" if r.threshold is None else f" (threshold {r.threshold:g}{unit})"
    return f"{r.name}: {value}{limit} Fail"


def sessions(
    checks: list[tuple[str, CheckFolder]], window: dt.timedelta
) -> list[list[tuple[str, CheckFolder]]]:
    """The checks as sessions: per serial, beam and geometry checks each within `window` of the
    previous one are one session; an enhanced check (couch, MLC) is a session of its own."""
    out: list[list[tuple[str, CheckFolder]]] = []
    open_session: dict[str, list[tuple[str, CheckFolder]]] = {}
    for rel, check in sorted(checks, key=lambda c: (c[1].when, c[0])):
        if check.enhanced:
            out.append([(rel, check)])
            continue
        current = open_session.get(check.serial)
        if current is not None and check.when - current[-1][1].when <= window:
            current.append((rel, check))
            continue
        open_session[check.serial] = [(rel, check)]
        out.append(open_session[check.serial])
    return out


def _machine(check: CheckFolder, settings: MPCSettings) -> str:
    return settings.machines.get(check.serial) or f"SN{check.serial}"


def _session_label(first: CheckFolder, settings: MPCSettings) -> str:
    return f"MPC {_machine(first, settings)} {first.when:%Y-%m-%d %H:%M}"


def _acquisition(
    rel: str, check: CheckFolder, session: str, settings: MPCSettings, ctx: GroupContext
) -> Acquisition:
    folder = PurePosixPath(rel).parent
    return Acquisition(
        analysis=SECTION,
        files=(rel,),
        name=f"{session} {check.check}",
        output_stem=folder.as_posix(),  # beside the check's folder, named after it
        machine=_machine(check, settings),
        acquired=check.when.astimezone(),
        variant={"serial": check.serial, "check": check.check, "session": session},
    )


def _chart(results: MPCResults) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results.rows if not r.per_leaf and r.value is not None and r.threshold]
    height = max(3.0, 0.25 * len(rows) + 1.5)
    figure, axes = plt.subplots(figsize=(8.27, height))
    names = [r.name for r in rows]
    fractions = [abs(r.value or 0.0) / (r.threshold or 1.0) for r in rows]
    colours = ["#c62828" if r.evaluation == "Fail" else "#2e7d32" for r in rows]
    axes.barh(range(len(rows)), fractions, color=colours)
    axes.axvline(1.0, color="black", linewidth=1)
    axes.set_yticks(range(len(rows)), names, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("|value| / Varian's threshold")
    axes.set_title(f"Varian MPC {results.check} (serial {results.serial})", fontsize=10)
    figure.text(0.01, 0.005, "Varian MPC Results.csv, as evaluated by the MPC application", fontsize=6)
    figure.tight_layout(rect=(0, 0.02, 1, 1))
    return figure
