"""Prefect tasks: thin wrappers that give each step a task run in the UI. The work itself lives in
plain functions under `linac_qa`."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Cancelled, Completed, State

from linac_qa.config import Settings
from linac_qa.execution.runner import JobOutcome
from linac_qa.grouping.plan import Planned, plan_directory
from linac_qa.intake.classify import classify_files, in_batches
from linac_qa.intake.discovery import Discovery, discover
from linac_qa.intake.sources import SourceCopy, copy_from_sources
from linac_qa.model import Acquisition, AnalysisResult, ClassifiedFile
from linac_qa.notify.outbox import mail_outcome, queue_run_mail
from linac_qa.notify.send import send_pending
from linac_qa.notify.settings import EmailSettings
from linac_qa.records.ledger import Known, Ledger
from linac_qa.records.reporting import analysis_markdown, artifact_key, results_table
from linac_qa.records.summary import Notification, RunSummary
from linac_qa.run import Run


# Analyses are scheduled on the worker pool before any subflow starts, so no core idles between
# modalities; the analysis task runs only wait for their own acquisition's outcome. The futures
# cannot be task parameters (Prefect records parameters), so they wait here, keyed by acquisition.
@dataclass(frozen=True)
class _Waiting:
    outcome: Future[JobOutcome]
    # Set when the run stops waiting for its analyses (a stop, a crash of the flow): a subflow does
    # not end before its task runs have, and an analysis in progress may take minutes more.
    abandoned: Future[None]


_scheduled: dict[str, _Waiting] = {}


@contextmanager
def scheduled_analyses(futures: dict[str, Future[JobOutcome]]) -> Iterator[None]:
    abandoned: Future[None] = Future()
    _scheduled.update({key: _Waiting(outcome, abandoned) for key, outcome in futures.items()})
    try:
        yield
    finally:
        _abandon(abandoned)
        for key in futures:
            _scheduled.pop(key, None)


def _abandon(abandoned: Future[None]) -> None:
    if not abandoned.done():
        abandoned.set_result(None)


# Retries only where a step is a pure read or an API call that a network hiccup can break (a file
# hash on a share, the artifact upload). The analysis task never retries: its result is a verdict.
@task(name="discover", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[10, 60])
def discover_files(
    directory: Path, settings: Settings, known: dict[str, Known], force: bool, retry_errors: bool
) -> Discovery:
    return discover(directory, settings, known, force=force, retry_errors=retry_errors)


@task(name="copy from sources", cache_policy=NO_CACHE)
def copy_sources(directory: Path, settings: Settings, ledger: Ledger) -> SourceCopy:
    copied = copy_from_sources(directory, settings, ledger)
    logger = get_run_logger()
    for warning in copied.warnings:
        logger.warning(warning)
    if copied.copied:
        logger.info("copied %d new file(s) from the sources", len(copied.copied))
    return copied


@task(name="classify", cache_policy=NO_CACHE)
def classify(directory: Path, paths: list[str], settings: Settings) -> list[ClassifiedFile]:
    return classify_files(directory, paths, settings)


def plan_in_tasks(
    directory: Path, settings: Settings, known: dict[str, Known], force: bool, retry_errors: bool
) -> Planned:
    """`plan_directory`, its discovery a task run and its classification one per batch of files."""
    planned = plan_directory(
        directory,
        settings,
        known,
        force=force,
        retry_errors=retry_errors,
        discover=discover_files,
        classify=_classify_in_batches,
    )
    get_run_logger().info("%d new file(s) in %s", len(planned.found.new), directory)
    return planned


def _classify_in_batches(directory: Path, paths: list[str], settings: Settings) -> list[ClassifiedFile]:
    mapped = classify.map(unmapped(directory), in_batches(paths), unmapped(settings))
    return [cf for fut in mapped for cf in fut.result()]


@task(name="analyse", task_run_name="{acquisition.name}", cache_policy=NO_CACHE, retries=0)
def analyse(acquisition: Acquisition) -> AnalysisResult | State:
    waiting = _scheduled[acquisition.key]
    either: list[Future[Any]] = [waiting.outcome, waiting.abandoned]
    wait(either, return_when=FIRST_COMPLETED)
    if waiting.outcome.done() and not waiting.outcome.cancelled():
        return waiting.outcome.result().result
    return Cancelled(message="not analysed: the run was stopped first; the next run analyses it")


def analysis_subflow(section: str, acquisitions: list[Acquisition], unit: str | None) -> list[AnalysisResult]:
    """One subflow run per analysis type, mapping the analysis task over its acquisitions."""

    # retries=0 whatever PREFECT_FLOWS_DEFAULT_RETRIES says (deployments set it for the parent flow).
    @flow(name=section, flow_run_name=f"{section} ({len(acquisitions)})", persist_result=False, retries=0)
    def run_section(acquisitions: list[Acquisition]) -> list[AnalysisResult]:
        try:
            outcomes = [f.result(raise_on_failure=False) for f in analyse.map(acquisitions)]
        except BaseException:  # a stop (SIGTERM, Ctrl-C) raises here: end now, not after the analyses
            for acquisition in acquisitions:
                _abandon(_scheduled[acquisition.key].abandoned)
            raise
        results = [r for r in outcomes if isinstance(r, AnalysisResult)]  # not those a stop cancelled
        create_markdown_artifact(
            key=artifact_key(section, unit), markdown=analysis_markdown(section, results), description=section
        )
        return results

    return run_section(acquisitions)


@task(name="publish results", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30])
def publish_results(summary: RunSummary) -> None:
    if summary.results:
        create_table_artifact(
            key=artifact_key("qa-results", summary.unit),
            table=results_table(summary),
            description=f"QA results for {summary.unit or summary.directory}: {summary.headline()}",
        )


@task(name="notify", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def notify(ledger: Ledger, email: EmailSettings, run_id: str) -> State:
    """Every pending message, earlier runs' first. A failure raises, so Prefect retries it; what
    still fails stays pending in the ledger for the next run."""
    sent = send_pending(ledger, email, run_id, get_run_logger())
    return Completed(message=f"{sent} e-mail(s) sent" if sent else "nothing to send")


def send_notifications(run: Run, summary: RunSummary) -> None:
    """Called once the results are recorded and their outputs written. E-mail never changes a
    run's results or exit status: whatever happens ends up in `summary.notifications`."""
    logger = get_run_logger()
    email = run.settings.email
    try:
        queue_run_mail(run.ledger, summary, email, run.run_id)
    except Exception as exc:
        logger.exception("could not write this run's e-mail")
        detail = f"could not write the e-mail: {type(exc).__name__}: {exc}"
        summary.notifications = [Notification(channel="email", status="failed", detail=detail)]
    else:
        failure = None
        if email.enabled:
            state = notify.with_options(retries=email.retries)(
                run.ledger, email, run.run_id, return_state=True
            )
            if state.is_failed():
                failure = state.message
                logger.warning("e-mail kept in the ledger for the next run: %s", failure)
        summary.notifications = mail_outcome(run.ledger, run.run_id, email, summary, failure)
