"""Worker processes for the analyses.

pebble rather than concurrent.futures: a worker that dies fails only its own acquisition (the
standard pool breaks every pending future), each analysis has a time limit, and workers are
replaced after `max_tasks` analyses so memory cannot build up. Workers are spawned, never forked
(Windows has no fork, and forking a process that runs Prefect's threads is unsafe), and import
pylinac once, at start-up. They start only once there is something to analyse (`warm`), and no
more of them than it needs: a worker's start costs seconds of CPU, which a run that finds nothing
new, run every few minutes by a watch or cron, would spend for nothing.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.spawn
import os
import subprocess
import sys
import threading
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from pebble import ProcessExpired, ProcessPool

from linac_qa.execution.pool_base import OnDone, Stop, cancel, failed_outcome, run_serialised
from linac_qa.execution.runner import Job, JobOutcome, brief_error
from linac_qa.execution.worker_start import init_worker, run_stopping


def _started() -> None:
    """Nothing: scheduling it starts the pool's workers."""


class WorkersUnavailable(RuntimeError):
    """No worker process can start, so no analysis can run; the message says why."""


class PoolBroken(RuntimeError):
    """The worker processes kept ending before analyses began (not a stop): the run cannot finish
    its work. Nothing was recorded for those analyses, so the next run does them."""


# A worker that dies while no analysis runs on any worker (the OOM killer, a kill while it starts)
# makes pebble fail every waiting analysis ("All workers expired") and refuse new ones: those never
# began, so they go to a fresh pool, this many times per AnalysisPool (workers that cannot start at
# all must not loop forever).
POOL_RESTARTS = 3
SPAWN = multiprocessing.get_context("spawn")


class NotBegun(Exception):
    """A task that reached its worker after its run was asked to stop: the next run analyses it."""


def run_unless_stopping(job: dict[str, Any]) -> dict[str, Any]:
    if run_stopping():
        raise NotBegun
    return run_serialised(job)


class AnalysisPool:
    def __init__(
        self, workers: int, timeout_seconds: float, max_tasks: int = 50, *, stop: Stop | None = None
    ):
        self.timeout = timeout_seconds
        self._stop = stop or Stop()
        self._workers, self._max_tasks = workers, max_tasks
        self._stopping = SPAWN.Event()  # the workers' view of a stop request (`run_stopping`)
        self._pool: ProcessPool | None = None  # started by `warm`
        self._replaced: list[ProcessPool] = []  # broken ones, joined at close
        self._lock = threading.Lock()  # on_done and the promises
        self._restart_lock = threading.Lock()
        # pebble's future: ours, and the pebble pool it went to
        self._scheduled: dict[Future[Any], tuple[Future[JobOutcome], ProcessPool]] = {}
        self._moving: set[Future[Any]] = set()  # held by a broken pool, on their way to a fresh one
        self._used = False
        # Set when the run stops or fails: what has not finished by then is not an outcome.
        self._abandoned = False
        self._not_started: list[str] = []  # lost to broken pools past POOL_RESTARTS: why
        self._stop.attach(self)  # last: a stop may come at any moment, and finds the pool whole

    def warm(self, expected: int | None = None) -> None:
        """Starts the workers now, so that they import pylinac while the run classifies: no more
        of them than `expected` analyses can use (None: as many as configured)."""
        with self._restart_lock:
            if self._pool is None:
                self._workers = max(1, min(self._workers, expected or self._workers))
                self._pool = self._start_pool()

    def _start_pool(self) -> ProcessPool:
        pool = ProcessPool(
            max_workers=self._workers,
            max_tasks=self._max_tasks,
            initializer=init_worker,
            initargs=(os.getpid(), self._stopping),
            context=SPAWN,
        )
        # pebble starts its workers at the first task: start them now, so that they import pylinac
        # while the run discovers and classifies (and a watch's first batch finds them ready).
        pool.schedule(_started)
        return pool

    def submit(self, job: Job, on_done: OnDone) -> Future[JobOutcome]:
        promise: Future[JobOutcome] = Future()
        if self._stop.is_set():
            cancel(promise)
            return promise
        self._used = True
        self._schedule(job, on_done, promise)
        return promise

    def _schedule(self, job: Job, on_done: OnDone, promise: Future[JobOutcome]) -> None:
        self.warm()
        pool = self._pool
        assert pool is not None
        try:
            scheduled = pool.schedule(
                run_unless_stopping, args=(job.model_dump(mode="json"),), timeout=self.timeout
            )
        except RuntimeError as exc:  # "Unexpected error within the Pool": it broke before this job came
            if self._replace(pool):
                self._schedule(job, on_done, promise)
                return
            cancel(promise)
            if self._abandoned:
                return
            raise WorkersUnavailable(
                f"the analysis worker processes cannot start: {_why_workers_fail()}"
            ) from exc
        self._scheduled[scheduled] = (promise, pool)

        def finished(fut: Future[Any]) -> None:
            self._scheduled.pop(fut, None)
            if fut in self._moving or (
                not fut.cancelled() and isinstance(fut.exception(), BrokenProcessPool) and self._replace(pool)
            ):
                self._moving.discard(fut)
                self._schedule(job, on_done, promise)
                return
            outcome = None if fut.cancelled() else self._outcome(job, fut)
            with self._lock:
                if outcome is None:  # it never ran to an end of its own: the next run analyses it
                    cancel(promise)
                    return
                try:
                    on_done(job, outcome)
                finally:
                    promise.set_result(outcome)

        scheduled.add_done_callback(finished)

    def _replace(self, broken: ProcessPool) -> bool:
        """Whether a working pool now stands in for `broken`, which broke by itself: a fresh one
        (at most POOL_RESTARTS times), to which everything `broken` still held moves (pebble fails
        the analyses it had handed out and leaves the others waiting forever)."""
        if self._abandoned:
            return False
        with self._restart_lock:
            if broken is self._pool:
                if len(self._replaced) >= POOL_RESTARTS:
                    return False
                self._replaced.append(broken)
                self._pool = self._start_pool()
            held = [f for f, (_, p) in list(self._scheduled.items()) if p is broken]
            stranded = [f for f in held if not f.running() and not f.done()]
            self._moving.update(stranded)
        for fut in stranded:
            if not fut.cancel():  # its callback sees it moving, and schedules it on the fresh pool
                self._moving.discard(fut)
        return True

    def _outcome(self, job: Job, fut: Future[Any]) -> JobOutcome | None:
        """The job's outcome, or None when it has none: ended by a stop, or never started."""
        try:
            return JobOutcome.model_validate(fut.result())
        except Exception as exc:
            if self._abandoned:
                # Killed or never started because the run is stopping (SIGTERM, an exception in the
                # flow): pebble fails those with BrokenProcessPool, a killed worker's with
                # ProcessExpired. The analysis did not fail; it was not let finish.
                return None
            if isinstance(exc, NotBegun):
                return None
            if isinstance(exc, TimeoutError):
                return failed_outcome(job, f"analysis stopped after the time limit of {self.timeout:g} s")
            if isinstance(exc, ProcessExpired):
                return failed_outcome(
                    job, f"worker process died during the analysis (exit code {exc.exitcode})"
                )
            if isinstance(exc, BrokenProcessPool):  # never began, and no fresh pool is left
                self._not_started.append(brief_error(exc))
                return None
            return failed_outcome(job, brief_error(exc))

    def cancel_pending(self) -> int:
        if self._stop.is_set():  # the tasks already in the workers' pipe are not begun either
            self._stopping.set()
        # pebble would cancel a running task by killing its worker: only the waiting ones go.
        return sum(fut.cancel() for fut in list(self._scheduled) if not fut.running() and not fut.done())

    def close(self) -> None:
        if self._pool is not None:
            if not self._used:  # warmed, then nothing to analyse: do not wait for them to start
                self._pool.stop()
            self._pool.close()
            self._pool.join()
        for broken in self._replaced:
            broken.stop()
            broken.join()
        if self._not_started and not self._abandoned:
            raise PoolBroken(
                f"the worker processes ended before {len(self._not_started)} analyses began, in"
                f" {len(self._replaced) + 1} pools ({self._not_started[0]}); nothing was recorded for"
                " them: the next run analyses them"
            )

    def abandon(self) -> None:
        """The run is stopping or failing: the waiting analyses never start, the ones in progress are
        ended with their workers, and none of them is an outcome (their files stay unrecorded, so the
        next run analyses them; outputs are renamed into place only when whole)."""
        self._abandoned = True
        self.cancel_pending()
        if self._pool is not None:
            self._pool.stop()
        # pebble may leave the future of a task whose worker it ended unresolved: whoever waits for
        # it (a run whose stop exception was lost) is told now.
        with self._lock:
            for promise, _ in list(self._scheduled.values()):
                cancel(promise)

    def __enter__(self) -> AnalysisPool:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            self.abandon()
        self.close()


def _why_workers_fail() -> str:
    """What stops a new worker: the interpreter it runs, or an import at its start (a worker's own
    error goes to the log, not to the pool)."""
    python = os.fsdecode(multiprocessing.spawn.get_executable())
    probe = "import sys; sys.path[:0] = sys.argv[1:]; import linac_qa.execution.local_pool"
    try:
        started = subprocess.run(
            [python, "-c", probe, *sys.path], capture_output=True, text=True, timeout=300
        )
    except OSError as exc:
        return f"{python} cannot be run: {exc.strerror}"
    except subprocess.TimeoutExpired:
        return f"{python} did not finish starting within 300 s"
    if started.returncode == 0:
        return "a test worker starts normally: see the log for the workers' own error"
    last = (started.stderr.strip().splitlines() or [f"exit code {started.returncode}"])[-1]
    return f"{python} fails as it starts: {last}"


def default_workers(configured: int | None) -> int:
    return configured or os.cpu_count() or 1
