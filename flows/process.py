"""`process-directory`: find what is new in a QA folder, classify it, analyse every acquisition
with pylinac in worker processes, record and publish the results.

    python -m flows.process DIR [--config FILE] [--force] [--retry-errors] [--dry-run] [--json]
"""

from __future__ import annotations

import datetime as dt
from contextlib import closing
from pathlib import Path
from typing import Any

from prefect import get_client, get_run_logger, tags
from prefect.context import FlowRunContext

from blocks.machine_config import run_settings
from flows import attended
from flows.stop_signals import cancelled_when_stopped
from flows.tasks import (
    analysis_subflow,
    copy_sources,
    named_completion,
    pending_reviews,
    plan_in_tasks,
    publish_results,
    record_views,
    scheduled_analyses,
    send_notifications,
)
from linac_qa.config import Settings
from linac_qa.execution.pool_base import Pool, Stop
from linac_qa.execution.pools import Lent, make_pool
from linac_qa.grouping.plan import by_analysis
from linac_qa.history.views_data import series_for
from linac_qa.records.ledger import Ledger
from linac_qa.run import Run, directory_lock, resolve_directory


class WatchBatch:
    """What a watch gives each of its batches: the settings it read once, and its pool, lent."""

    def __init__(self, settings: Settings, pool: Pool) -> None:
        self.settings = settings
        self.pool = Lent(pool)


def _run_name() -> str:
    """The flow run's name: its unit and start in local time, "TrueBeam1 2024-03-05 02:00" (the
    folder's name without a unit), instead of two random words. Prefect asks for it as the run
    begins, so that its own lines (begun, finished: what serve's output shows) carry it too. A
    deployment's run started by hand keeps the name it was given: whoever started it chose it."""
    context = FlowRunContext.get()  # Prefect resolves the name in the run's context
    assert context is not None and context.flow_run is not None
    flow_run, parameters = context.flow_run, context.parameters or {}
    if flow_run.deployment_id is not None and not flow_run.auto_scheduled:
        return flow_run.name
    batch = attended.BATCH.get()
    settings: Settings | None
    try:
        settings = batch.settings if batch else run_settings(*map(parameters.get, ("config", "config_block")))
    except Exception:  # the flow reads it again and fails with the reason; a name is no reason to crash
        settings = None
    directory = parameters.get("directory") or (settings and settings.general.directory) or ""
    label = run_label(settings.general.unit if settings else None, Path(directory).absolute())
    return f"{label} {dt.datetime.now().astimezone():%Y-%m-%d %H:%M}"


def run_label(unit: str | None, root: Path) -> str:
    """What names a run and keys its artifacts: the unit, else the folder's name, so that two
    machines' runs never share one."""
    return unit or root.name


@attended.attended_flow(
    name="process-directory", flow_run_name=_run_name, persist_result=False, validate_parameters=False
)
@cancelled_when_stopped
def process_directory(
    directory: str | None = None,
    config: str | None = None,
    force: bool = False,
    config_block: str | None = None,
    retry_errors: bool = False,
) -> Any:
    """Copies what is new from the sources, plans the directory (discover, classify, group), records
    what needs no analysis, analyses the rest on the worker pool (a subflow per analysis type,
    each result recorded as it arrives), then notifies and publishes the summary."""
    batch = attended.BATCH.get()
    # A file, a machine-config block, or the defaults; a watch's batch has them from the watch.
    settings = batch.settings if batch else run_settings(config, config_block)
    root = resolve_directory(directory, settings)
    unit_tags = [settings.general.unit] if settings.general.unit else []
    label = run_label(settings.general.unit, root)
    _tag_this_run(unit_tags)
    with tags(*unit_tags):
        with directory_lock(root), closing(Ledger.open(root)) as ledger:
            run = Run(root, settings, ledger, force=force, listener=attended.LISTENER.get())
            # The run's own Stop, unless a watch lends its pool: a stop signal reaches it (abandon_all).
            with batch.pool if batch else make_pool(settings.general, Stop()) as workers:
                if settings.general.sources:
                    run.warnings.extend(copy_sources(root, settings, ledger).warnings)
                planned = plan_in_tasks(root, settings, ledger.known(), force, retry_errors, workers)
                to_analyse = run.start(planned)
                futures = run.submit(workers, to_analyse)
                with scheduled_analyses(futures):
                    for section, acquisitions in by_analysis(to_analyse).items():
                        analysis_subflow(section, acquisitions, label, root)
            summary = run.summary(planned.skipped(stopped=sum(f.cancelled() for f in futures.values())))
            try:
                # Only now: every result is recorded and its outputs written. Under the directory's
                # lock, so two runs never send the same pending message, nor write one dashboard.
                trends = record_views(root, summary, series_for)
                pending_reviews(root, summary)
                send_notifications(run, summary, trends)
            finally:
                run.finish(summary)
        publish_results(summary, label)
    get_run_logger().info("%s: %s", root, summary.headline())
    # QA failures are this run's results, not a failure of the run: it ends Completed, named so
    # that the UI shows them.
    return named_completion(summary.results, summary, summary.headline())


def _tag_this_run(unit_tags: list[str]) -> None:
    """Tags the flow run with its unit, as its subflows and task runs are (created in `tags`)."""
    context = FlowRunContext.get()
    if not unit_tags or context is None or context.flow_run is None:
        return
    flow_run = context.flow_run
    flow_run.tags = sorted({*flow_run.tags, *unit_tags})
    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run.id, tags=flow_run.tags)


if __name__ == "__main__":
    from flows.cli import main

    raise SystemExit(main())
