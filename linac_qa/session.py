"""One processing run of a directory, without Prefect: the lock, the ledger, turning acquisitions
into worker jobs, recording each outcome the moment it arrives, and the summary at the end."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from filelock import FileLock, Timeout

from linac_qa import versions
from linac_qa.config import Settings
from linac_qa.hashing import sha256_file
from linac_qa.ledger import STATE_DIR, FileStamp, Ledger
from linac_qa.model import Acquisition, AnalysisResult
from linac_qa.outputs import run_stamp
from linac_qa.runner import Job, JobOutcome
from linac_qa.summary import RunSummary, skipped_counts


class UsageError(Exception):
    """Bad command line or directory: exit status 2, before any work."""


class DirectoryBusy(Exception):
    """Another run holds the directory's lock: exit status 3."""


def resolve_directory(given: str | os.PathLike[str] | None, settings: Settings) -> Path:
    """The command line's DIR, else `general.directory`; it must exist."""
    chosen = given if given not in (None, "") else settings.general.directory
    if chosen is None:
        raise UsageError("no directory: give DIR on the command line or general.directory in the config")
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise UsageError(f"directory not found: {path}")
    return path.resolve()


@contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """One run per directory. The OS releases the lock when its process dies, so a crashed run
    never blocks the next one."""
    state = directory / STATE_DIR
    state.mkdir(exist_ok=True)
    lock = FileLock(state / "run.lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise DirectoryBusy(f"another run is processing {directory} (lock {state / 'run.lock'})") from None
    try:
        yield
    finally:
        lock.release()


@runtime_checkable
class Listener(Protocol):
    """Who watches a run as it goes: the terminal's progress bar and verdict lines."""

    def planned(self, total: int) -> None: ...

    def finished(self, result: AnalysisResult) -> None: ...


@dataclass
class Run:
    directory: Path
    settings: Settings
    ledger: Ledger
    force: bool = False
    listener: Listener | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    stamps: dict[str, FileStamp] = field(default_factory=dict)
    results: list[AnalysisResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ledger.start_run(self.run_id, self.started)

    def job(self, acq: Acquisition) -> Job:
        g = self.settings.general
        return Job(
            directory=str(self.directory),
            acquisition=acq,
            settings=self.settings.section(acq.analysis).model_dump(mode="json", by_alias=True),
            suffix=g.suffix,
            output_directory=str(g.output_directory) if g.output_directory else None,
            unit=g.unit,
            config_hash=self.settings.hash,
            run_stamp=run_stamp(self.started),
            keep_history=self.force,
        )

    def record(self, result: AnalysisResult, hashes: dict[str, str] | None = None) -> None:
        """Into the ledger at once, so a crash later in the run does not redo this one."""
        hashes = hashes or {}
        stamps = []
        for rel in result.files:
            stamp = self.stamps.get(rel) or FileStamp(rel, 0, 0)
            sha = hashes.get(rel) or _hash_or_none(self.directory / rel)
            stamps.append(FileStamp(stamp.path, stamp.size, stamp.mtime_ns, sha))
        self.ledger.record(
            result,
            stamps,
            run_id=self.run_id,
            config_hash=self.settings.hash,
            pylinac_version=versions.pylinac(),
        )
        self.results.append(result)
        if self.listener:
            self.listener.finished(result)

    def record_outcome(self, job: Job, outcome: JobOutcome) -> None:
        self.record(outcome.result, outcome.hashes)

    def summary(self, skipped: Counter[str]) -> RunSummary:
        summary = RunSummary(
            directory=str(self.directory),
            unit=self.unit(),
            started=self.started,
            finished=dt.datetime.now(dt.UTC),
            results=sorted(self.results, key=_result_order),
            skipped=skipped_counts(skipped),
        )
        self.ledger.finish_run(self.run_id, summary.finished, summary.model_dump(mode="json"))
        return summary

    def unit(self) -> str | None:
        """The configured unit, else the machine the data names most often."""
        if self.settings.general.unit:
            return self.settings.general.unit
        seen = Counter(r.unit for r in self.results if r.unit)
        return seen.most_common(1)[0][0] if seen else None


def _result_order(r: AnalysisResult) -> tuple[str, str]:
    return (r.analysis or "~", r.files[0] if r.files else "")


def _hash_or_none(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None
