"""What the two pools (`local_pool`, `dask_pool`) share, and what the rest of a process sees of
them: the `Pool` protocol, the `Stop` each pool is made with, and the helpers for promises and failed
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

    def warm(self, expected: int | None = None) -> None:
        """Makes ready for `expected` analyses (None: as many as it can run at once) while the run
        classifies its files; `submit` does it anyway if nothing has."""
        ...

    def cancel_pending(self) -> int:
        """Cancels the jobs that have not started (a stopping watch); their futures are cancelled
        and `on_done` is not called for them. Returns how many."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Pool: ...

    def __exit__(self, *exc: object) -> None: ...


class LivePool(Pool, Protocol):
    """A pool that a stop signal can reach (`Stop.abandon`)."""

    def abandon(self) -> None:
        """The process is ending on a stop signal: waiting analyses never start, and none that has
        not finished becomes an outcome."""
        ...


class Stop:
    """A request to stop, seen by everything it is given to: the pools made with it start no
    analysis once it is set, and a watch looks for no further batch."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._pools: weakref.WeakSet[LivePool] = weakref.WeakSet()
        with _process_lock:
            if _process_ending.is_set():  # made after a stop signal: nothing new starts
                self._event.set()
            _live_stops.add(self)

    def attach(self, pool: LivePool) -> None:
        """Puts a pool within reach of this stop (`request`, `abandon`)."""
        self._pools.add(pool)

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    def request(self) -> int:
        """Lets the analyses in progress finish and cancels the ones waiting, in every pool made
        with this stop; returns how many were cancelled. Their files are not recorded, so the next
        run analyses them."""
        self._event.set()
        return sum(pool.cancel_pending() for pool in list(self._pools))

    def abandon(self) -> None:
        """The process is ending on a stop signal: every pool made with this stop does what its
        block does when the signal's exception reaches it (waiting analyses never start, local
        workers are ended, nothing unfinished is recorded)."""
        self._event.set()
        for pool in list(self._pools):
            pool.abandon()


# Every Stop of the process, for `abandon_all`: the stop-signal listener is a thread that holds
# none of them (each run and each watch makes its own). Once the process is ending, a new Stop is
# born set, so that a pool made after the signal starts nothing either.
_live_stops: weakref.WeakSet[Stop] = weakref.WeakSet()
_process_ending = threading.Event()
_process_lock = threading.Lock()


def abandon_all() -> None:
    """The process is ending on a stop signal: every Stop of it is abandoned, and so every pool
    made with one (see `Stop.abandon`)."""
    with _process_lock:
        _process_ending.set()
        stops = list(_live_stops)
    for stop in stops:
        stop.abandon()


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
