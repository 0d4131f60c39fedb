"""One processing run of a directory, without Prefect: the lock, the ledger, turning acquisitions
into worker jobs, recording each outcome the moment it arrives, and the summary at the end."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from filelock import FileLock, Timeout

from linac_qa.checkpoints import checkpoint
from linac_qa.config import ConfigError, Settings
from linac_qa.execution.adopt import adopt
from linac_qa.execution.pool_base import Pool
from linac_qa.execution.runner import Job, JobOutcome
from linac_qa.grouping.plan import Planned
from linac_qa.history.baselines import BASELINES_FILE
from linac_qa.history.judging import History, record_result
from linac_qa.history.record import RECORD_FILE
from linac_qa.intake.discovery import mark_identical_done, printable
from linac_qa.intake.hashing import Hashed, hash_file
from linac_qa.intake.sources import NOT_FOUND, folder_problem
from linac_qa.intake.zipsafe import ZipLimits
from linac_qa.model import Acquisition, AnalysisResult
from linac_qa.records import versions
from linac_qa.records.ledger import STATE_DIR, FileStamp, Ledger
from linac_qa.records.outputs import distinct_stems, remove_stale_temporaries, run_stamp
from linac_qa.records.summary import RunSummary, skipped_counts
from linac_qa.review import queue
from linac_qa.review.trail import TRAIL_FILE, Trail, entry_of

# What the run writes in its state folder; a symbolic link planted under one of these names would
# make the run write (or truncate) its target, anywhere.
STATE_FILES = (
    "run.lock",
    "watch.lock",
    "ledger.sqlite",
    "ledger.sqlite-wal",
    "ledger.sqlite-shm",
    "ledger.sqlite-journal",
    *(
        f"{name}{end}"
        for name in (RECORD_FILE, BASELINES_FILE, TRAIL_FILE)
        for end in ("", "-wal", "-shm", "-journal")
    ),
)
SCRATCH = "tmp"  # DIR/.linac-qa/tmp: zips are extracted here; emptied at the start and end of each run


class UsageError(Exception):
    """Bad command line or directory: exit status 2, before any work."""


class DirectoryNotFound(UsageError):
    """DIR is not there (yet): a share that is not mounted. A command exits 2; a watch waits."""


class DirectoryBusy(Exception):
    """Another run holds the directory's lock: exit status 3."""


def resolve_directory(given: str | os.PathLike[str] | None, settings: Settings) -> Path:
    """The command line's DIR, else `general.directory`; it must exist."""
    chosen = given if given not in (None, "") else settings.general.directory
    if chosen is None:
        raise UsageError("no directory: give DIR on the command line or general.directory in the config")
    path = Path(chosen).expanduser()
    problem = folder_problem(path)
    if problem == NOT_FOUND:
        raise DirectoryNotFound(f"directory not found: {path} (network share not mounted?)")
    if problem:
        raise UsageError(f"directory {printable(str(path))} {problem}")
    path = path.resolve()
    if printable(str(path)) != str(path):  # every result, the ledger and the JSON name files under it
        raise UsageError(f"directory {printable(str(path))}: its path is not valid UTF-8; rename it")
    check_output_directory(path, settings)
    check_state_folder(path)
    return path


def check_output_directory(directory: Path, settings: Settings) -> None:
    """Outputs inside the state folder would be lost (its scratch folder is emptied, its history is
    the run's); an output directory that holds the folder above DIR makes every run walk (and clear
    temporaries in) other folders, or the whole file system for `/`."""
    out = settings.general.output_directory
    if out is None:
        return
    real = Path(os.path.realpath(out))
    state, above = directory / STATE_DIR, directory.parent
    if real == state or state in real.parents:
        problem = f"{out} is inside the run's state folder {state}"
    elif real == above or real in above.parents:
        problem = f"{out} holds the folder above the data ({above})"
    else:
        return
    raise ConfigError(
        settings.source,
        "general.output-directory",
        f"{problem}; allowed: a folder outside {state} that does not contain {above}, "
        f"e.g. {above / (directory.name + '-reports')}",
    )


def check_state_folder(directory: Path) -> None:
    """The run writes only inside DIR/.linac-qa (and next to the data): never through a link."""
    state = directory / STATE_DIR
    if state.is_symlink() or (state.exists() and not state.is_dir()):
        raise UsageError(
            f"{state} is a symbolic link or a file: the run keeps its state in a real folder only"
        )
    for name in (*STATE_FILES, SCRATCH):
        if (state / name).is_symlink():
            raise UsageError(f"{state / name} is a symbolic link: refusing to write through it")


@contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """One run per directory, and none inside a directory being processed. The OS releases the lock
    when its process dies, so a crashed run never blocks the next one."""
    state = directory / STATE_DIR
    _refuse_inside_a_run(directory)  # before the state folder exists: a refused run leaves none
    lock = FileLock(state / "run.lock", timeout=0)
    try:
        state.mkdir(exist_ok=True)
        lock.acquire()
    except Timeout:
        raise _busy(directory) from None
    except OSError as exc:  # a read-only share, a full disk: the run cannot keep its records
        raise OSError(
            exc.errno, f"cannot write the run's state folder {state}: {exc.strerror} (read-only share?)"
        ) from exc
    try:
        # Again, now that the state folder exists: a run of a parent folder that started since then
        # holds its lock now, and one that starts later finds the state folder and skips this folder.
        _refuse_inside_a_run(directory)
        yield
    finally:
        lock.release()


def check_not_busy(directory: Path) -> None:
    """Raises DirectoryBusy when another run holds DIR or a folder above it, changing nothing: a
    command says so before it starts a flow run (which would end red for what is no fault).
    `directory_lock` still decides, for a run that starts in between."""
    _refuse_inside_a_run(directory)
    lock_file = directory / STATE_DIR / "run.lock"
    if lock_file.is_file():
        lock = FileLock(lock_file, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise _busy(directory) from None
        except OSError:
            return  # not ours to judge here: directory_lock says what is wrong with the state folder
        lock.release()


def _busy(directory: Path) -> DirectoryBusy:
    return DirectoryBusy(f"another run is processing {directory} (lock {directory / STATE_DIR / 'run.lock'})")


def _refuse_inside_a_run(directory: Path) -> None:
    """A run of a folder above this one would analyse these files too (discovery skips a folder with
    its own state only from the moment that state exists)."""
    for parent in directory.parents:
        lock_file = parent / STATE_DIR / "run.lock"
        if not lock_file.is_file():
            continue
        probe = FileLock(lock_file, timeout=0)
        try:
            probe.acquire()
        except Timeout:
            raise DirectoryBusy(
                f"another run is processing {parent}, which includes {directory} (lock {lock_file}); "
                "run again when it has finished"
            ) from None
        except OSError:  # not ours to open (another user's state, a read-only share): cannot tell
            continue
        probe.release()


@contextmanager
def watch_lock(directory: Path) -> Iterator[None]:
    """One watch per directory (each of its batches also takes the run lock)."""
    state = directory / STATE_DIR
    state.mkdir(exist_ok=True)
    lock = FileLock(state / "watch.lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise DirectoryBusy(
            f"another watch is running on {directory} (lock {state / 'watch.lock'})"
        ) from None
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
    # Set by `start`: what discovery saw of each file (recorded for a file nobody can hash), and the
    # files whose recorded error is retried, with why.
    stamps: dict[str, FileStamp] = field(default_factory=dict)
    retried: dict[str, str] = field(default_factory=dict)
    results: list[AnalysisResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    history: History | None = None  # the record and baselines, opened at the first analysed result
    trail: Trail | None = None  # the review trail, opened at the first result that reached a verdict
    trail_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.ledger.start_run(self.run_id, self.started)
        # Under the directory's lock: whatever is here was left by a killed run or worker.
        self.remove_scratch()
        self.scratch.mkdir(parents=True)
        out_dir = self.settings.general.output_directory
        if out_dir is not None and out_dir.is_dir():
            # No live job writes a temporary for longer than its time limit.
            remove_stale_temporaries(out_dir, self.settings.general.analysis_timeout_seconds)

    @property
    def scratch(self) -> Path:
        return self.directory / STATE_DIR / SCRATCH

    def remove_scratch(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    def job(self, acq: Acquisition) -> Job:
        g = self.settings.general
        limits = ZipLimits.from_megabytes(g.zip_max_megabytes, g.zip_max_ratio)
        return Job(
            directory=str(self.directory),
            acquisition=acq,
            settings=self.settings.section(acq.analysis).model_dump(mode="json", by_alias=True),
            suffix=g.suffix,
            output_directory=str(g.output_directory) if g.output_directory else None,
            unit=g.unit,
            config_hash=self.settings.hash,
            run_stamp=run_stamp(self.started),
            # Outputs already there (a changed original re-analysed, --force) go to the history
            # folder, never silently overwritten: they are QA records.
            keep_history=True,
            zip_max_bytes=limits.max_bytes,
            zip_max_ratio=limits.max_ratio,
            scratch=str(self.scratch),
        )

    def start(self, planned: Planned) -> list[Acquisition]:
        """Takes what discovery found and the plan made of it: temporaries that killed runs left are
        deleted, files only touched since they were recorded are marked done, and the results
        decided without an analysis are recorded. Returns what still needs a worker (`to_analyse`)."""
        found, plan = planned.found, planned.plan
        self.stamps = {s.path: s for s in found.stamps}
        self.retried = found.retried
        for stale in found.stale_temporaries:
            stale.unlink(missing_ok=True)
        mark_identical_done(self.ledger, found)
        if self.listener:
            self.listener.planned(len(plan.decided) + len(plan.acquisitions))
        for decided in plan.decided:
            self.record(decided)
        return self.to_analyse(plan.acquisitions)

    def submit(self, pool: Pool, acquisitions: list[Acquisition]) -> dict[str, Future[JobOutcome]]:
        """Every acquisition to the pool, each recorded the moment its analysis ends; the largest
        first, so that a long series does not start last and keep the run waiting on it alone."""
        largest_first = sorted(acquisitions, key=lambda a: len(a.files), reverse=True)
        return {acq.key: pool.submit(self.job(acq), self.record_outcome) for acq in largest_first}

    def to_analyse(self, acquisitions: list[Acquisition]) -> list[Acquisition]:
        """What still needs a worker: output names made distinct, then (unless --force) the results
        that a killed run left complete on disk but never recorded are recorded from their outputs."""
        g = self.settings.general
        acquisitions = distinct_stems(acquisitions, self.directory, g.suffix, g.output_directory)
        if self.force:
            return acquisitions
        remaining = []
        for acq in acquisitions:
            job = self.job(acq)
            outcome = adopt(job)
            if outcome is None:
                remaining.append(acq)
            else:
                outcome.result.warnings.append("recorded from the outputs of an interrupted run")
                self.record_outcome(job, outcome)
        return remaining

    def record(
        self,
        result: AnalysisResult,
        hashes: dict[str, str] | None = None,
        stamps: dict[str, tuple[int, int]] | None = None,
    ) -> None:
        """Into the ledger at once, so a crash later in the run does not redo this one. Each file
        with its hash and the size and mtime it had when hashed (`hashes`, `stamps`: the worker's);
        a file hashed by nobody yet is hashed now."""
        hashes, stamps = hashes or {}, stamps or {}
        files = []
        for rel in result.files:
            if rel in hashes and rel in stamps:
                files.append(FileStamp(rel, *stamps[rel], hashes[rel]))
                continue
            hashed = _hash_or_none(self.directory / rel)
            if hashed is None:  # unreadable: as discovery saw it, without a hash
                seen = self.stamps.get(rel) or FileStamp(rel, 0, 0)
                files.append(FileStamp(rel, seen.size, seen.mtime_ns))
            else:
                files.append(FileStamp(rel, hashed.size, hashed.mtime_ns, hashed.sha256))
        sources = {f.path: f.sha256 for f in files if f.sha256}
        self.judge(result, sources)
        self.add_to_trail(result, sources)  # judged: its level and drift warnings are known
        retried = sorted({self.retried[rel] for rel in result.files if rel in self.retried})
        # Said on the result, so that a verdict where the last run had an error is not a mystery.
        result.warnings.extend(f"an earlier error retried: {why}" for why in retried)
        self.ledger.record(result, files, run_id=self.run_id, provenance=versions.current(self.settings.hash))
        self.results.append(result)
        if self.listener:
            self.listener.finished(result)

    def judge(self, result: AnalysisResult, sources: dict[str, str]) -> None:
        """Into the record and judged against its levels and baseline (linac_qa.history), before the
        ledger keeps the verdict. A record that cannot be written costs its judgement, said as a
        warning of the run, never the batch."""
        if result.analysis is None or result.analysis not in self.settings.analyses:
            return
        try:
            if self.history is None:
                self.history = History.open(self.directory)
            record_result(self.history, result, sources, self.settings.section(result.analysis))
        except (sqlite3.Error, OSError, ValueError) as exc:
            problem = f"the QA record could not be updated: {type(exc).__name__}: {exc}"
            if problem not in self.warnings:
                self.warnings.append(problem)

    def add_to_trail(self, result: AnalysisResult, sources: dict[str, str]) -> None:
        """Into the review trail (errors too), a clean result auto-reviewed. A trail that cannot be
        written is a warning of the run, never a stopped batch."""
        now = dt.datetime.now(dt.UTC)
        entry = entry_of(result, sources, now)
        if entry is None:
            return
        try:
            with self.trail_lock:
                if self.trail is None:
                    self.trail = Trail(self.directory)
                queue.record(self.trail, entry, now)
        except (sqlite3.Error, OSError) as exc:
            problem = f"the review trail could not be updated: {type(exc).__name__}: {exc}"
            if problem not in self.warnings:
                self.warnings.append(problem)

    def close_history(self) -> None:
        if self.history is not None:
            with self.history.lock:
                self.history.close()
            self.history = None
        with self.trail_lock:
            if self.trail is not None:
                self.trail.close()
                self.trail = None

    def record_outcome(self, job: Job, outcome: JobOutcome) -> None:
        checkpoint("before-ledger")  # the outputs exist; a kill here leaves them for adoption
        self.record(outcome.result, outcome.hashes, outcome.stamps)

    def summary(self, skipped: Counter[str]) -> RunSummary:
        summary = RunSummary(
            directory=str(self.directory),
            unit=self.unit(),
            started=self.started,
            finished=dt.datetime.now(dt.UTC),
            results=sorted(self.results, key=_result_order),
            skipped=skipped_counts(skipped),
            warnings=self.warnings,
        )
        self.remove_scratch()  # every worker has finished
        self.close_history()
        return summary

    def finish(self, summary: RunSummary) -> None:
        """The summary into the ledger, once it is complete (its notifications said)."""
        self.ledger.finish_run(self.run_id, summary.finished, summary.model_dump(mode="json"))

    def unit(self) -> str | None:
        """The configured unit, else the machine the data names most often."""
        if self.settings.general.unit:
            return self.settings.general.unit
        seen = Counter(r.unit for r in self.results if r.unit)
        return seen.most_common(1)[0][0] if seen else None


def _result_order(r: AnalysisResult) -> tuple[str, str]:
    return (r.analysis or "~", r.files[0] if r.files else "")


def _hash_or_none(path: Path) -> Hashed | None:
    if path.is_symlink() or not path.is_file():  # links are never followed; a named pipe would block
        return None
    try:
        return hash_file(path)
    except OSError:
        return None
