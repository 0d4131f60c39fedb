"""One acquisition, start to finish, in a worker process: load, analyse, judge, write the outputs.

Knows nothing of Prefect. Takes and returns plain data, so it runs the same in a local worker
process, a Dask worker or a test.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
import time
import zipfile
from contextlib import ExitStack
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict

from linac_qa import versions
from linac_qa.analyses import REGISTRY
from linac_qa.analyses.base import AnalysisType, Inputs, Verdict
from linac_qa.hashing import sha256_file
from linac_qa.headers import PREAMBLE, looks_like_dicom
from linac_qa.model import Acquisition, AnalysisResult, Status
from linac_qa.outputs import atomic_target, display_path, keep_previous, output_paths, write_text_atomic
from linac_qa.sections import AnalysisSettings

# Zips are refused before extraction when they would unpack to more than this, or compress
# suspiciously well (a zip bomb); DICOM images compress about 2-4 times.
MAX_ZIP_BYTES = 4 << 30
MAX_ZIP_RATIO = 200
_SHORT_HASH = 16


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


class JobOutcome(BaseModel):
    result: AnalysisResult
    hashes: dict[str, str]


def run_job(job: Job) -> JobOutcome:
    started = time.perf_counter()
    acq = job.acquisition
    analysis = REGISTRY[acq.analysis]
    settings = analysis.settings_model.model_validate(job.settings)
    directory = Path(job.directory)
    result = AnalysisResult(
        analysis=acq.analysis,
        model=analysis.model_name(acq, settings),
        files=list(acq.files),
        status=Status.ERROR,
        reason="",
        unit=job.unit or acq.machine,
        acquired=acq.acquired,
        warnings=list(acq.warnings),
    )
    hashes: dict[str, str] = {}
    try:
        hashes = {f: sha256_file(directory / f) for f in acq.files}
        problem = analysis.check_group(acq, settings)
        if problem:
            result.reason = problem
        else:
            verdict, outputs = _analyse(analysis, settings, job, hashes)
            result.status, result.reason, result.metrics = verdict.status, verdict.reason, verdict.metrics
            result.outputs = outputs
    except Exception as exc:  # pylinac raises anything on bad data: it becomes this acquisition's error
        result.status = Status.ERROR
        result.reason = brief_error(exc)
    finally:
        _close_figures()
    result.seconds = round(time.perf_counter() - started, 2)
    return JobOutcome(result=result, hashes=hashes)


def _analyse(
    analysis: AnalysisType, settings: AnalysisSettings, job: Job, hashes: dict[str, str]
) -> tuple[Verdict, list[str]]:
    acq = job.acquisition
    directory = Path(job.directory)
    with ExitStack() as stack:
        inputs = _inputs(directory, acq, stack)
        analysed = analysis.load(inputs, acq, settings)
        analysed.analyze(**analysis.analyze_kwargs(acq, settings))
        verdict = analysis.judge(analysed, acq, settings)
        try:
            outputs = _write_outputs(analysis, analysed, verdict, job, hashes)
        except OSError as exc:
            raise OSError(
                f"outputs could not be written ({verdict.status.value}: {verdict.reason}): {exc}"
            ) from exc
    return verdict, [display_path(p, directory) for p in outputs]


def _inputs(directory: Path, acq: Acquisition, stack: ExitStack) -> Inputs:
    paths = [directory / f for f in acq.files]
    if len(paths) == 1 and zipfile.is_zipfile(paths[0]):
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="linac-qa-zip-")))
        return Inputs(paths=safe_extract_dicoms(paths[0], folder), zip_path=paths[0])
    return Inputs(paths=paths)


def safe_extract_dicoms(zip_path: Path, folder: Path) -> list[Path]:
    """The zip's DICOM members, extracted flat into `folder` under safe names. Refuses members
    that escape (`../`, absolute paths, drive letters), symbolic links and zip bombs."""
    with zipfile.ZipFile(zip_path) as zf:
        members = [i for i in zf.infolist() if not i.is_dir()]
        total = sum(i.file_size for i in members)
        packed = sum(i.compress_size for i in members) or 1
        if total > MAX_ZIP_BYTES or total / packed > MAX_ZIP_RATIO:
            raise ValueError(f"zip refused: {total} bytes uncompressed, ratio {total / packed:.0f}")
        out = []
        for n, info in enumerate(members):
            name = info.filename.replace("\\", "/")
            if name.startswith("/") or ".." in PurePosixPath(name).parts or ":" in name:
                raise ValueError(f"zip refused: member {info.filename!r} points outside the archive")
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise ValueError(f"zip refused: member {info.filename!r} is a symbolic link")
            with zf.open(info) as src:
                if not looks_like_dicom(src.read(PREAMBLE + 4)):
                    continue
            target = folder / f"{n:04d}_{PurePosixPath(name).name}"
            with zf.open(info) as src, target.open("wb") as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    dst.write(chunk)
            out.append(target)
    if not out:
        raise ValueError("zip holds no DICOM images")
    return out


def _write_outputs(
    analysis: AnalysisType, analysed: Any, verdict: Verdict, job: Job, hashes: dict[str, str]
) -> list[Path]:
    acq = job.acquisition
    directory = Path(job.directory)
    out_dir = Path(job.output_directory) if job.output_directory else None
    paths = output_paths(directory, acq.output_stem, job.suffix, out_dir)
    if job.keep_history:
        keep_previous(list(paths.values()), directory, job.run_stamp)
    provenance = _provenance(job, hashes)
    with atomic_target(paths[".png"]) as tmp:
        analysis.save_image(analysed, tmp)
    _close_figures()
    write_text_atomic(paths[".txt"], analysed.results())
    document = {
        "linac-qa-flows": {
            "analysis": acq.analysis,
            "acquisition": acq.name,
            "status": verdict.status.value,
            "reason": verdict.reason,
            "metrics": verdict.metrics,
            "warnings": list(acq.warnings),
            "unit": job.unit or acq.machine,
            "acquired": acq.acquired.isoformat() if acq.acquired else None,
            "provenance": provenance,
        },
        "pylinac": json.loads(analysed.results_data(as_json=True)),
    }
    write_text_atomic(paths[".json"], json.dumps(document, indent=1, default=str))
    with atomic_target(paths[".pdf"]) as tmp:
        analysed.publish_pdf(str(tmp), metadata=_pdf_metadata(job, provenance), notes=_pdf_notes(verdict))
    _close_figures()
    return [paths[".pdf"], paths[".png"], paths[".txt"], paths[".json"]]


def _provenance(job: Job, hashes: dict[str, str]) -> dict[str, Any]:
    combined = hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in sorted(hashes.items())).encode()).hexdigest()
    files: dict[str, Any] = {"count": len(hashes), "combined_sha256": combined}
    if len(hashes) <= 50:
        files["sha256"] = hashes
    return {
        "inputs": files,
        "linac-qa-flows": versions.linac_qa(),
        "pylinac": versions.pylinac(),
        "config_hash": job.config_hash,
        "analysed": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _pdf_metadata(job: Job, provenance: dict[str, Any]) -> dict[str, str]:
    """pylinac prints each entry as a line of the report's header: short values only."""
    acq = job.acquisition
    inputs = provenance["inputs"]
    return {
        "Unit": job.unit or acq.machine or "unknown",
        "Acquired": acq.acquired.strftime("%Y-%m-%d %H:%M") if acq.acquired else "unknown",
        "Source": _shorten(acq.name, 60) + (f" ({inputs['count']} files)" if inputs["count"] > 1 else ""),
        "Inputs SHA-256": inputs["combined_sha256"][:_SHORT_HASH],
        "Software": f"linac-qa-flows {provenance['linac-qa-flows']}, pylinac {provenance['pylinac']}",
        "Config": job.config_hash,
    }


def _pdf_notes(verdict: Verdict) -> list[str]:
    return [f"Verdict: {verdict.status.value.upper()}", verdict.reason]


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def brief_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _close_figures() -> None:
    import matplotlib.pyplot as plt

    plt.close("all")
