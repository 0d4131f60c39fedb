"""Which pool a run's analyses go to: the local worker processes, or the Dask cluster named in the
config; and a pool lent by its owner (a watch) to each of its runs."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING

from linac_qa.execution.dask_pool import DaskPool
from linac_qa.execution.local_pool import AnalysisPool, default_workers
from linac_qa.execution.pool_base import OnDone, Pool, Stop
from linac_qa.execution.runner import Job, JobOutcome

if TYPE_CHECKING:
    from linac_qa.config import GeneralSettings


class Lent:
    """A pool lent to one run by its owner (a watch keeps its workers warm, pylinac imported,
    between batches; they are still replaced after `worker-max-analyses` analyses): the run's end
    does not close it."""

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

    def warm(self, expected: int | None = None) -> None:
        """Its owner warmed it for every run it lends it to."""

    def cancel_pending(self) -> int:
        return self._pool.cancel_pending()

    def close(self) -> None:
        pass

    def __enter__(self) -> Lent:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:  # the run failed: nothing waits for its queued analyses any more
            self._abandoned = True
            self._pool.cancel_pending()


def make_pool(general: GeneralSettings, stop: Stop) -> Pool:
    """The configured pool; it starts no analysis once `stop` is set."""
    if general.executor.dask_address:
        return DaskPool(general.executor.dask_address, general.analysis_timeout_seconds, stop=stop)
    workers = default_workers(general.workers)
    return AnalysisPool(workers, general.analysis_timeout_seconds, general.worker_max_analyses, stop=stop)
