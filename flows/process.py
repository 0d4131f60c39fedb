"""`process-directory`: find what is new in a QA folder, classify it, analyse every acquisition
with pylinac in worker processes, record and publish the results.

    python -m flows.process DIR [--config FILE] [--force] [--retry-errors] [--dry-run] [--json]
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Completed

from blocks.machine_config import run_settings
from flows.tasks import (
    analysis_subflow,
    classify_in_tasks,
    copy_sources,
    discover_files,
    publish_results,
    scheduled_analyses,
    send_notifications,
)
from linac_qa.execution.pools import make_pool
from linac_qa.grouping.plan import plan_directory
from linac_qa.intake.discovery import mark_identical_done
from linac_qa.records.ledger import Ledger
from linac_qa.run import Listener, Run, directory_lock, resolve_directory


@flow(name="process-directory", persist_result=False, validate_parameters=False)
def process_directory(
    directory: str | None = None,
    config: str | None = None,
    force: bool = False,
    listener: Listener | None = None,
    config_block: str | None = None,
    retry_errors: bool = False,
) -> Any:
    logger = get_run_logger()
    settings = run_settings(config, config_block)  # a file, a machine-config block, or defaults
    root = resolve_directory(directory, settings)
    with directory_lock(root):
        ledger = Ledger.open(root)
        run = Run(root, settings, ledger, force=force, listener=listener)
        general = settings.general
        try:
            with make_pool(general) as pool:
                if general.sources:
                    run.warnings.extend(copy_sources(root, settings, ledger).warnings)
                planned = plan_directory(
                    root,
                    settings,
                    ledger.known(),
                    force=force,
                    retry_errors=retry_errors,
                    discover=discover_files,
                    classify=classify_in_tasks,
                )
                found, work = planned.found, planned.plan
                run.retried = found.retried
                for stale in found.stale_temporaries:
                    stale.unlink(missing_ok=True)
                run.stamps = {s.path: s for s in found.stamps}
                mark_identical_done(ledger, found)
                logger.info("%d new file(s) in %s", len(found.new), root)
                if listener:
                    listener.planned(len(work.decided) + len(work.acquisitions))
                for decided in work.decided:
                    run.record(decided)
                # Distinct output names; results a killed run left complete on disk are adopted.
                work.acquisitions = run.to_analyse(work.acquisitions)
                futures = {
                    acq.key: pool.submit(run.job(acq), run.record_outcome)
                    for acq in sorted(work.acquisitions, key=lambda a: len(a.files), reverse=True)
                }
                with scheduled_analyses(futures):
                    for section, acquisitions in work.by_analysis().items():
                        analysis_subflow(section, acquisitions, general.unit)
            stopped = sum(f.cancelled() for f in futures.values())
            summary = run.summary(planned.skipped(stopped))
            try:
                # Only now: every result is recorded and its outputs written. Under the directory's
                # lock, so two runs never send the same pending message.
                send_notifications(run, summary)
            finally:
                run.finish(summary)
        finally:
            ledger.close()
    publish_results(summary)
    counts = summary.counts()
    problems = counts["failed"] + counts["error"]
    logger.info("%s: %s", root, summary.headline())
    # QA failures are this run's results, not a failure of the run: it ends Completed, named so the
    # UI shows them.
    name = f"Completed: {problems} QA problem{'s' if problems != 1 else ''}" if problems else "Completed"
    return Completed(data=summary, name=name, message=summary.headline())


if __name__ == "__main__":
    from flows.cli import main

    raise SystemExit(main())
