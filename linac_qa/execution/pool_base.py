"""What the two pools (`local_pool`, `dask_pool`) share, and what the rest of a process sees of
them: the `Pool` protocol, the process's stop event, and the helpers for promises and failed
outcomes. Imports neither pool, so that each pool imports only this (and `pools` chooses between
them)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from linac_qa.execution.runner import Job, JobOutcome, run_job
from linac_qa.model import AnalysisResult

OnDone = Callable[[Job, JobOutcome], None]


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


class LivePool(Pool, Protocol):
    """A pool that a stop signal can reach (`abandon_all`)."""

    def abandon(self) -> None:
        """The process is ending on a stop signal: waiting analyses never start, and none that has
        not finished becomes an outcome."""
        ...


# Set when the process is asked to stop (a watch's Ctrl-C): no new analysis starts, in any pool.
_stopping = threading.Event()
_live_pools: weakref.WeakSet[LivePool] = weakref.WeakSet()


def register(pool: LivePool) -> None:
    """Puts a new pool within reach of `request_stop` and `abandon_all`."""
    _live_pools.add(pool)


def request_stop() -> int:
    """Lets the analyses in progress finish and cancels the ones waiting, in every pool of this
    process; returns how many were cancelled. Their files are not recorded, so the next run
    analyses them."""
    _stopping.set()
    return sum(pool.cancel_pending() for pool in list(_live_pools))


def abandon_all() -> None:
    """The process is ending on a stop signal: every pool of it does what its block does when the
    signal's exception reaches it (waiting analyses never start, local workers are ended, nothing
    unfinished is recorded)."""
    _stopping.set()
    for pool in list(_live_pools):
        pool.abandon()


def stopping() -> bool:
    return _stopping.is_set()


def run_serialised(job: dict[str, Any]) -> dict[str, Any]:
    """A job as a worker process receives it and its outcome as it sends it back: plain data."""
    return run_job(Job.model_validate(job)).model_dump(mode="json")


def failed_outcome(job: Job, reason: str) -> JobOutcome:
    return JobOutcome(result=AnalysisResult.acquisition_error(job.acquisition, job.unit, reason), hashes={})


def cancel(promise: Future[JobOutcome]) -> None:
    if promise.done():  # settled already (under the pool's lock: nothing settles it meanwhile)
        return
    promise.cancel()
    # As an executor does: without it a cancelled future never counts as done for
    # concurrent.futures.wait() and as_completed(), which would wait forever.
    promise.set_running_or_notify_cancel()
