"""One acquisition, start to finish, in a worker process: load, analyse, judge, write the outputs.

Knows nothing of Prefect. Takes and returns plain data, so it runs the same in a local worker
process, a Dask worker or a test.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import tempfile
import time
import zipfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from linac_qa.analyses import REGISTRY
from linac_qa.analyses.base import AnalysisType, Inputs, close_figures
from linac_qa.analyses.criteria import Implausible, Verdict
from linac_qa.checkpoints import checkpoint, stall
from linac_qa.history.variants import MODEL_OPTIONS, variant_text
from linac_qa.intake.hashing import MAX_LISTED, combined_sha256, hash_file
from linac_qa.intake.zipsafe import ZipLimits, safe_extract_dicoms
from linac_qa.model import Acquisition, AnalysisResult, Status
from linac_qa.records import report_page, versions
from linac_qa.records.outputs import display_path, keep_previous, output_paths, staged_outputs
from linac_qa.records.report_page import ReportFacts
from linac_qa.records.reporting import mark
from linac_qa.sections import AnalysisSettings

__all__ = ["Job", "JobOutcome", "brief_error", "combined_sha256", "run_job", "safe_extract_dicoms"]

# The outputs in the order they are renamed into place: the `.json` last, so that a `.json` under its
# final name means the whole set is there (what a run after a crash relies on to adopt them).
COMMIT_ORDER = (".png", ".txt", ".pdf", ".json")


class Job(BaseModel):
    model_config = ConfigDict(frozen=True)

    directory: str
    acquisition: Acquisition
    settings: dict[str, Any]
    suffix: str
    output_directory: str | None = None
    unit: str | None = None
    config_hash: str
    run_stamp: str
    keep_history: bool = False
    zip_max_bytes: int = ZipLimits.max_bytes
    zip_max_ratio: float = ZipLimits.max_ratio
    # Where zips are extracted (a folder the run owns and empties); None: the system's temporary folder.
    scratch: str | None = None


class JobOutcome(BaseModel):
    result: AnalysisResult
    hashes: dict[str, str]
    # Each input's size and mtime (ns) as it was hashed: recorded with its hash, not discovery's.
    stamps: dict[str, tuple[int, int]] = {}


def run_job(job: Job) -> JobOutcome:
    started = time.perf_counter()
    acq = job.acquisition
    analysis = REGISTRY[acq.analysis]
    settings = analysis.settings_model.model_validate(job.settings)
    directory = Path(job.directory)
    result = AnalysisResult.acquisition_error(acq, job.unit, model=analysis.model_name(acq, settings))
    result.variant = variant_of(analysis, acq, result.model)
    hashes: dict[str, str] = {}
    stamps: dict[str, tuple[int, int]] = {}
    try:
        for f in acq.files:
            hashed = hash_file(directory / f)
            hashes[f], stamps[f] = hashed.sha256, (hashed.size, hashed.mtime_ns)
        problem = analysis.check_group(acq, settings)
        if problem:
            result.reason = problem
        else:
            verdict, outputs = _analyse(analysis, settings, job, hashes)
            result.status, result.reason, result.metrics = verdict.status, verdict.reason, verdict.metrics
            result.judged, result.outputs = verdict.judged, outputs
    except Implausible as exc:  # the analysis did not find what it must: no verdict, and no report
        result.status = Status.ERROR
        result.reason = f"implausible: {exc}"
        result.metrics = exc.metrics
    except Exception as exc:  # pylinac raises anything on bad data: it becomes this acquisition's error
        result.status = Status.ERROR
        result.reason = brief_error(exc)
    finally:
        close_figures()
    result.seconds = round(time.perf_counter() - started, 2)
    return JobOutcome(result=result, hashes=hashes, stamps=stamps)


def _analyse(
    analysis: AnalysisType, settings: AnalysisSettings, job: Job, hashes: dict[str, str]
) -> tuple[Verdict, list[str]]:
    acq = job.acquisition
    directory = Path(job.directory)
    with ExitStack() as stack:
        inputs = _inputs(job, stack)
        analysed = analysis.load(inputs, acq, settings)
        checkpoint("analysis", in_worker=True)
        stall(acq.name)
        analysis.run(analysed, acq, settings)
        verdict = analysis.judge(analysed, acq, settings)
        if verdict.status is Status.IGNORED:  # e.g. an imaging log: nothing judged, nothing to file
            return verdict, []
        try:
            outputs = _write_outputs(analysis, settings, analysed, verdict, job, hashes, inputs)
        except OSError as exc:  # disk full, read-only share, a file where a folder should be
            # Nothing was written under a final name; an error is not retried on its own, so say how.
            raise OSError(
                f"outputs could not be written ({verdict.status.value}: {verdict.reason}): {exc};"
                " fix the output location, then re-run with --retry-errors"
            ) from exc
    return verdict, [display_path(p, directory) for p in outputs]


def _inputs(job: Job, stack: ExitStack) -> Inputs:
    paths = [Path(job.directory) / f for f in job.acquisition.files]
    if len(paths) == 1 and zipfile.is_zipfile(paths[0]):
        # Removed when the analysis ends, whatever happens; a killed worker's folder is in the run's
        # scratch area, which the next run empties.
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="zip-", dir=job.scratch)))
        limits = ZipLimits(max_bytes=job.zip_max_bytes, max_ratio=job.zip_max_ratio)
        members = safe_extract_dicoms(paths[0], folder, limits)
        return Inputs(paths=members, zip_path=paths[0], extracted_to=folder)
    return Inputs(paths=paths)


def _write_outputs(
    analysis: AnalysisType,
    settings: AnalysisSettings,
    analysed: Any,
    verdict: Verdict,
    job: Job,
    hashes: dict[str, str],
    inputs: Inputs,
) -> list[Path]:
    acq = job.acquisition
    directory = Path(job.directory)
    out_dir = Path(job.output_directory) if job.output_directory else None
    paths = output_paths(directory, acq.output_stem, job.suffix, out_dir)
    finals = [paths[ext] for ext in COMMIT_ORDER]
    # --force keeps the previous outputs, moved away only once the new ones are complete.
    history = (lambda: keep_previous(finals, directory, job.run_stamp)) if job.keep_history else None
    provenance = _provenance(job, hashes)
    model = analysis.model_name(acq, settings)
    facts = _report_facts(job, model, verdict, provenance)
    with staged_outputs(finals, before_commit=history) as tmp:
        theirs = io.BytesIO()  # pylinac's pages, in memory: nothing but the staged files on disk
        analysis.write_report(analysed, theirs, tmp[paths[".png"]])
        report_page.write_pdf(facts, theirs.getvalue(), tmp[paths[".pdf"]])
        png = tmp[paths[".png"]]
        png.write_bytes(report_page.titled_png(png.read_bytes(), report_page.title_line(facts)))
        results = _relative_text(analysis.results_text(analysed), directory, inputs)
        tmp[paths[".txt"]].write_text(report_page.text_header(facts) + results, encoding="utf-8")
        checkpoint("outputs", in_worker=True)
        document = _document(job, model, verdict, provenance)
        document["pylinac"] = analysis.results_json(analysed)
        tmp[paths[".json"]].write_text(json.dumps(document, indent=1, default=str), encoding="utf-8")
    return [paths[".pdf"], paths[".png"], paths[".txt"], paths[".json"]]


def _document(job: Job, model: str | None, verdict: Verdict, provenance: dict[str, Any]) -> dict[str, Any]:
    """Our part of the `.json`: the verdict and its provenance (what a later run adopts from)."""
    acq = job.acquisition
    return {
        "linac-qa-flows": {
            "analysis": acq.analysis,
            "model": model,
            "acquisition": acq.name,
            "status": verdict.status.value,
            "reason": verdict.reason,
            "judged": verdict.judged,
            "metrics": verdict.metrics,
            "warnings": list(acq.warnings),
            "unit": job.unit or acq.machine,
            "acquired": acq.acquired.isoformat() if acq.acquired else None,
            "variant": variant_of(REGISTRY[acq.analysis], acq, model),
            "provenance": provenance,
        },
    }


def variant_of(analysis: AnalysisType, acq: Acquisition, model: str | None) -> str:
    """The acquisition's variant as the record keys its series by (linac_qa.history.variants)."""
    return variant_text(acq.variant, model, model_chosen=bool(MODEL_OPTIONS & set(analysis.variant_options)))


def _provenance(job: Job, hashes: dict[str, str]) -> dict[str, Any]:
    files: dict[str, Any] = {"count": len(hashes), "combined_sha256": combined_sha256(hashes)}
    if len(hashes) <= MAX_LISTED:
        files["sha256"] = hashes
    return {
        "inputs": files,
        "linac-qa-flows": versions.linac_qa(),
        "pylinac": versions.pylinac(),
        "config_hash": job.config_hash,
        "analysed": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _report_facts(job: Job, model: str | None, verdict: Verdict, provenance: dict[str, Any]) -> ReportFacts:
    acq = job.acquisition
    return ReportFacts(
        analysis=acq.analysis,
        model=model,
        acquisition=acq.name,
        unit=job.unit or acq.machine or "unknown",
        machine=acq.machine,
        acquired=acq.acquired,
        files=acq.files,
        verdict=mark(verdict.status, verdict.judged),
        reason=verdict.reason,
        metrics=verdict.metrics,
        provenance=provenance,
    )


def _relative_text(text: str, directory: Path, inputs: Inputs) -> str:
    """pylinac's results may name an input by its absolute path, or by where its zip was extracted
    (a folder that is gone once the analysis ends): named as everywhere else, relative to the
    processed directory, a zip's members under the zip's name."""
    names = {directory: "."}
    if inputs.extracted_to is not None and inputs.zip_path is not None:
        names[inputs.extracted_to] = display_path(inputs.zip_path, directory)
    folders = {str(spelt): name for folder, name in names.items() for spelt in (folder, folder.resolve())}
    for folder in sorted(folders, key=len, reverse=True):  # a scratch folder may lie inside DIR
        name = folders[folder]
        inside = "" if name == "." else f"{name}/"
        text = re.sub(re.escape(folder) + r"[\\/]", _literal(inside), text)
        text = re.sub(re.escape(folder) + r"(?![\w.-])", _literal(name), text)
    return text


def _literal(replacement: str) -> str:
    """`replacement` for re.sub, taken as it is (a file name may hold a backslash)."""
    return replacement.replace("\\", "\\\\")


def brief_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__
