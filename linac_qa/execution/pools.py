"""Which pool a run's analyses go to: the local worker processes, or the Dask cluster named in the
config; and, during a watch, the one pool every batch borrows."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import TYPE_CHECKING

from linac_qa.execution.dask_pool import DaskPool
from linac_qa.execution.local_pool import AnalysisPool, default_workers
from linac_qa.execution.pool_base import LivePool, OnDone, Pool, register
from linac_qa.execution.runner import Job, JobOutcome

if TYPE_CHECKING:
    from linac_qa.config import GeneralSettings

_shared: Pool | None = None


@contextmanager
def shared_pool(general: GeneralSettings) -> Iterator[Pool]:
    """One pool for every run started inside the block: a watch keeps its workers warm (pylinac
    imported) between batches; they are still replaced after `worker-max-analyses` analyses."""
    global _shared
    with make_pool(general) as pool:
        _shared = pool
        try:
            yield pool
        finally:
            _shared = None


class _Borrowed:
    """The shared pool, lent to one run: the run's end does not close it."""

    def __init__(self, pool: Pool):
        self._pool = pool
        self._abandoned = False

    def submit(self, job: Job, on_done: OnDone) -> Future[JobOutcome]:
        def record(job: Job, outcome: JobOutcome) -> None:
            # An analysis of a run that failed meanwhile goes on in the shared pool; the run's ledger
            # is closed, and its outputs are adopted by the next run.
            if not self._abandoned:
                on_done(job, outcome)

        return self._pool.submit(job, record)

    def cancel_pending(self) -> int:
        return self._pool.cancel_pending()

    def close(self) -> None:
        pass

    def __enter__(self) -> _Borrowed:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:  # the run failed: nothing waits for its queued analyses any more
            self._abandoned = True
            self._pool.cancel_pending()


def make_pool(general: GeneralSettings) -> Pool:
    if _shared is not None:
        return _Borrowed(_shared)
    pool: LivePool
    if general.executor.dask_address:
        pool = DaskPool(general.executor.dask_address, general.analysis_timeout_seconds)
    else:
        pool = AnalysisPool(
            default_workers(general.workers), general.analysis_timeout_seconds, general.worker_max_analyses
        )
    register(pool)
    return pool
