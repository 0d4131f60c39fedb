"""Worker processes for the analyses.

pebble rather than concurrent.futures: a worker that dies fails only its own acquisition (the
standard pool breaks every pending future), each analysis has a time limit, and workers are
replaced after `max_tasks` analyses so memory cannot build up. Workers are spawned, never forked
(Windows has no fork, and forking a process that runs Prefect's threads is unsafe), and import
pylinac once, at start-up, while the parent is still discovering files.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol

import psutil
from pebble import ProcessExpired, ProcessPool

from linac_qa.model import AnalysisResult, Status
from linac_qa.runner import Job, JobOutcome, brief_error, run_job

if TYPE_CHECKING:
    from linac_qa.config import GeneralSettings

OnDone = Callable[[Job, JobOutcome], None]
# How often a worker checks that its run is still alive.
PARENT_POLL_SECONDS = 0.5


def _init_worker() -> None:
    _exit_with_parent(os.getppid())
    # pylinac prints to stdout; the summary owns stdout, so the worker's goes to stderr.
    os.dup2(2, 1)
    os.environ.setdefault("MPLBACKEND", "Agg")
    warnings.filterwarnings("ignore")
    import matplotlib

    matplotlib.use("Agg")
    import linac_qa.analyses  # noqa: F401  (pays pylinac's import once per worker)


def _exit_with_parent(parent: int) -> None:
    """A run that is killed (SIGKILL, the OOM killer, a closed terminal) cannot stop its workers,
    and a busy worker would go on writing outputs nobody records, perhaps while the next run
    analyses the same files. So each worker watches its run and exits the moment it is gone."""

    def watch() -> None:
        while os.getppid() == parent and psutil.pid_exists(parent):
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)  # no cleanup: the next run removes temporaries and the scratch folder

    threading.Thread(target=watch, name="watch-run", daemon=True).start()


def _run(job: dict[str, Any]) -> dict[str, Any]:
    return run_job(Job.model_validate(job)).model_dump(mode="json")


class Pool(Protocol):
    """What a run needs from wherever its analyses execute."""

    def submit(self, job: Job, on_done: OnDone) -> Future[JobOutcome]:
        """Schedules the job; `on_done` runs as soon as it finishes, under a lock shared by all the
        pool's jobs, whatever the order in which results are later waited for. A crash, a time-out
        or an exception becomes an `error` outcome for that job alone."""
        ...

    def cancel_pending(self) -> int:
        """Cancels the jobs that have not started (a stopping watch); their futures are cancelled
        and `on_done` is not called for them. Returns how many."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Pool: ...

    def __exit__(self, *exc: object) -> None: ...


def make_pool(general: GeneralSettings) -> Pool:
    if general.executor.dask_address:
        from linac_qa.dask_pool import DaskPool

        return DaskPool(general.executor.dask_address, general.analysis_timeout_seconds)
    return AnalysisPool(
        default_workers(general.workers), general.analysis_timeout_seconds, general.worker_max_analyses
    )


class AnalysisPool:
    def __init__(self, workers: int, timeout_seconds: float, max_tasks: int = 50):
        self.timeout = timeout_seconds
        self._pool = ProcessPool(
            max_workers=workers,
            max_tasks=max_tasks,
            initializer=_init_worker,
            context=multiprocessing.get_context("spawn"),
        )
        self._lock = threading.Lock()
        self._scheduled: set[Future[Any]] = set()

    def submit(self, job: Job, on_done: OnDone) -> Future[JobOutcome]:
        promise: Future[JobOutcome] = Future()
        scheduled = self._pool.schedule(_run, args=(job.model_dump(mode="json"),), timeout=self.timeout)
        self._scheduled.add(scheduled)

        def finished(fut: Future[Any]) -> None:
            self._scheduled.discard(fut)
            if fut.cancelled():
                promise.cancel()
                return
            try:
                outcome = JobOutcome.model_validate(fut.result())
            except TimeoutError:
                outcome = failed_outcome(job, f"analysis stopped after the time limit of {self.timeout:g} s")
            except ProcessExpired as exc:
                outcome = failed_outcome(
                    job, f"worker process died during the analysis (exit code {exc.exitcode})"
                )
            except Exception as exc:
                outcome = failed_outcome(job, brief_error(exc))
            try:
                with self._lock:
                    on_done(job, outcome)
            finally:
                promise.set_result(outcome)

        scheduled.add_done_callback(finished)
        return promise

    def cancel_pending(self) -> int:
        # pebble would cancel a running task by killing its worker: only the waiting ones go.
        return sum(fut.cancel() for fut in list(self._scheduled) if not fut.running() and not fut.done())

    def close(self) -> None:
        self._pool.close()
        self._pool.join()

    def __enter__(self) -> AnalysisPool:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            self._pool.stop()
        self.close()


def failed_outcome(job: Job, reason: str) -> JobOutcome:
    acq = job.acquisition
    result = AnalysisResult(
        analysis=acq.analysis,
        model=None,
        files=list(acq.files),
        status=Status.ERROR,
        reason=reason,
        unit=job.unit or acq.machine,
        acquired=acq.acquired,
        warnings=list(acq.warnings),
    )
    return JobOutcome(result=result, hashes={})


def default_workers(configured: int | None) -> int:
    return configured or os.cpu_count() or 1
