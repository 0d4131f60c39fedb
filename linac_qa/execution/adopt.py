"""Adopting what a killed run finished: the outputs are complete on disk, the ledger has no row.

A run killed between writing an acquisition's outputs and recording them in the ledger leaves a
whole set of outputs (the `.json` is renamed into place last) that no ledger row knows of. The next
run records that result from the `.json` instead of analysing the acquisition a second time, but
only when the `.json` is provably about these inputs: the same files with the same SHA-256, the
same analysis and the same config, made by the same pylinac and linac-qa-flows (an error retried
because one of them changed is analysed, not answered by older outputs). Anything else is analysed
as usual (and `--force` never adopts).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from linac_qa.execution.runner import COMMIT_ORDER, Job, JobOutcome, combined_sha256
from linac_qa.intake.hashing import hash_file
from linac_qa.model import AnalysisResult, Status
from linac_qa.records import versions
from linac_qa.records.outputs import display_path, output_paths

_JUDGED = (Status.PASSED, Status.FAILED)


def adopt(job: Job) -> JobOutcome | None:
    """The outcome recorded in this acquisition's complete outputs, or None when it must be analysed."""
    acq = job.acquisition
    directory = Path(job.directory)
    out_dir = Path(job.output_directory) if job.output_directory else None
    paths = output_paths(directory, acq.output_stem, job.suffix, out_dir)
    try:
        # OSError: a name too long for the file system (found by the hostile-folder test) and the like.
        if not all(paths[ext].is_file() and not paths[ext].is_symlink() for ext in COMMIT_ORDER):
            return None
        ours = json.loads(paths[".json"].read_text(encoding="utf-8"))["linac-qa-flows"]
        hashed = {f: hash_file(directory / f) for f in acq.files}
        hashes = {f: h.sha256 for f, h in hashed.items()}
        if not _same_acquisition(ours, job, hashes):
            return None
        result = AnalysisResult(
            analysis=acq.analysis,
            model=ours["model"],
            files=list(acq.files),
            status=Status(ours["status"]),
            reason=ours["reason"],
            metrics=ours["metrics"],
            judged=bool(ours["judged"]),  # absent from an older release's `.json`: analysed again
            outputs=[display_path(paths[ext], directory) for ext in (".pdf", ".png", ".txt", ".json")],
            unit=ours.get("unit"),
            acquired=acq.acquired,
            warnings=list(ours.get("warnings") or []),
            variant=ours.get("variant"),
        )
    except (OSError, ValueError, KeyError, TypeError, ValidationError):
        return None  # unreadable or not ours: analyse
    if result.status not in _JUDGED:
        return None
    return JobOutcome(
        result=result, hashes=hashes, stamps={f: (h.size, h.mtime_ns) for f, h in hashed.items()}
    )


def _same_acquisition(ours: dict[str, Any], job: Job, hashes: dict[str, str]) -> bool:
    provenance = ours.get("provenance") or {}
    inputs = provenance.get("inputs") or {}
    return (
        ours.get("analysis") == job.acquisition.analysis
        and provenance.get("config_hash") == job.config_hash
        and provenance.get("pylinac") == versions.pylinac()
        and provenance.get("linac-qa-flows") == versions.linac_qa()
        and inputs.get("count") == len(hashes)
        and inputs.get("combined_sha256") == combined_sha256(hashes)
    )
