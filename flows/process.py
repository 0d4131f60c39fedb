"""`process-directory`: find what is new in a QA folder, classify it, analyse every acquisition
with pylinac in worker processes, record and publish the results.

    python -m flows.process DIR [--config FILE] [--force] [--retry-errors] [--dry-run] [--json]
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Completed, State

from blocks.machine_config import run_settings
from flows.tasks import (
    analysis_subflow,
    copy_sources,
    plan_in_tasks,
    publish_results,
    scheduled_analyses,
    send_notifications,
)
from linac_qa.config import Settings
from linac_qa.execution.pool_base import Pool, Stop
from linac_qa.execution.pools import Lent, make_pool
from linac_qa.grouping.plan import by_analysis
from linac_qa.records.ledger import Ledger
from linac_qa.records.summary import RunSummary
from linac_qa.run import Listener, Run, directory_lock, resolve_directory


class WatchBatch:
    """What a watch gives each of its batches: the settings it read once, and its pool, lent."""

    # Prefect records a flow's parameters: an object without a __dict__ is recorded by its type's
    # name instead of being walked through (a pool's threads, processes and clients).
    __slots__ = ("pool", "settings")

    def __init__(self, settings: Settings, pool: Pool) -> None:
        self.settings = settings
        self.pool = Lent(pool)


@flow(name="process-directory", persist_result=False, validate_parameters=False)
def process_directory(
    directory: str | None = None,
    config: str | None = None,
    force: bool = False,
    listener: Listener | None = None,
    config_block: str | None = None,
    retry_errors: bool = False,
    batch: WatchBatch | None = None,
) -> Any:
    """Copies what is new from the sources, plans the directory (discover, classify, group), records
    what needs no analysis, analyses the rest on the worker pool (a subflow per analysis type,
    each result recorded as it arrives), then notifies and publishes the summary."""
    # A file, a machine-config block, or the defaults; a watch's batch has them from the watch.
    settings = batch.settings if batch else run_settings(config, config_block)
    root = resolve_directory(directory, settings)
    with directory_lock(root), closing(Ledger.open(root)) as ledger:
        run = Run(root, settings, ledger, force=force, listener=listener)
        # The run's own Stop, unless a watch lends its pool: a stop signal reaches it (abandon_all).
        with batch.pool if batch else make_pool(settings.general, Stop()) as workers:
            if settings.general.sources:
                run.warnings.extend(copy_sources(root, settings, ledger).warnings)
            planned = plan_in_tasks(root, settings, ledger.known(), force, retry_errors)
            to_analyse = run.start(planned)
            futures = run.submit(workers, to_analyse)
            with scheduled_analyses(futures):
                for section, acquisitions in by_analysis(to_analyse).items():
                    analysis_subflow(section, acquisitions, settings.general.unit)
        summary = run.summary(planned.skipped(stopped=sum(f.cancelled() for f in futures.values())))
        try:
            # Only now: every result is recorded and its outputs written. Under the directory's
            # lock, so two runs never send the same pending message.
            send_notifications(run, summary)
        finally:
            run.finish(summary)
    publish_results(summary)
    get_run_logger().info("%s: %s", root, summary.headline())
    return _completed(summary)


def _completed(summary: RunSummary) -> State:
    """QA failures are this run's results, not a failure of the run: it ends Completed, named so
    that the UI shows them."""
    problems = sum(r.is_problem for r in summary.results)
    name = f"Completed: {problems} QA problem{'s' if problems != 1 else ''}" if problems else "Completed"
    return Completed(data=summary, name=name, message=summary.headline())


if __name__ == "__main__":
    from flows.cli import main

    raise SystemExit(main())
