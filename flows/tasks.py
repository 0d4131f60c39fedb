"""Prefect tasks: thin wrappers that give each step a task run in the UI. The work itself lives in
plain functions under `linac_qa`."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from prefect import flow, get_client, get_run_logger, task, unmapped
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.settings import get_current_settings
from prefect.states import Cancelled, Completed, State
from prefect.utilities.annotations import quote

from flows.stop_signals import cancelled_when_stopped
from linac_qa.config import Settings
from linac_qa.execution.pool_base import Pool
from linac_qa.execution.runner import JobOutcome
from linac_qa.grouping.plan import Planned, plan_directory
from linac_qa.history.artifact import run_markdown
from linac_qa.history.dashboard import write_dashboard
from linac_qa.history.latest import Latest, latest_first, result_ids_of
from linac_qa.history.series import MetricSeries
from linac_qa.intake.classify import classify_files, in_batches
from linac_qa.intake.discovery import Discovery, discover
from linac_qa.intake.sources import SourceCopy, copy_from_sources
from linac_qa.model import Acquisition, AnalysisResult, ClassifiedFile, Status
from linac_qa.notify.message import NO_REMINDERS
from linac_qa.notify.outbox import mail_outcome, queue_run_mail
from linac_qa.notify.send import send_pending
from linac_qa.notify.settings import EmailSettings
from linac_qa.records.ledger import Known, Ledger
from linac_qa.records.outputs import display_path
from linac_qa.records.reporting import (
    analysis_markdown,
    artifact_key,
    report_path,
    results_table,
    verdict_line,
)
from linac_qa.records.summary import NOT_JUDGED, Notification, RunSummary, counted, outcome, verdict
from linac_qa.review import queue
from linac_qa.review.digest import reminders
from linac_qa.review.text import pending_markdown
from linac_qa.review.trail import REVIEWED, Trail
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
    directory: Path,
    settings: Settings,
    known: dict[str, Known],
    force: bool,
    retry_errors: bool,
    workers: Pool,
) -> Planned:
    """`plan_directory`, its discovery a task run and its classification one per batch of files;
    the workers start while the new files are classified."""

    def classify_while_warming(directory: Path, paths: list[str], settings: Settings) -> list[ClassifiedFile]:
        if paths:
            workers.warm(len(paths))  # a file is at most one analysis: never more workers than files
        return _classify_in_batches(directory, paths, settings)

    planned = plan_directory(
        directory,
        settings,
        known,
        force=force,
        retry_errors=retry_errors,
        discover=_discover_in_a_task,
        classify=classify_while_warming,
    )
    get_run_logger().info("%d new file(s) in %s", len(planned.found.new), directory)
    return planned


def _discover_in_a_task(
    directory: Path, settings: Settings, known: dict[str, Known], *, force: bool, retry_errors: bool
) -> Discovery:
    # Prefect walks every parameter of a task run, looking for futures to wait on: over an archive's
    # thousand analysed files, that walk cost more than a second of every run that found nothing new
    # (issue 12, acceptance 5). `quote` hands them over unvisited.
    unvisited = cast("dict[str, Known]", quote(known))  # the task receives the dict itself
    return discover_files(directory, settings, unvisited, force, retry_errors)


def _classify_in_batches(directory: Path, paths: list[str], settings: Settings) -> list[ClassifiedFile]:
    mapped = classify.map(unmapped(directory), in_batches(paths), unmapped(settings))
    return [cf for fut in mapped for cf in fut.result()]


# Marks a verdict's log record: a terminal that prints its own verdict lines leaves it out of its
# copy of Prefect's log (flows/cli.py), and the UI and serve's output keep it.
VERDICT = "linac_qa_verdict"

# How loud each outcome is in Prefect's logs (the UI, serve's output, the journal).
LOG_LEVELS = {
    Status.PASSED.value: logging.INFO,
    Status.IGNORED.value: logging.INFO,
    NOT_JUDGED: logging.WARNING,
    Status.FAILED.value: logging.WARNING,
    Status.ERROR.value: logging.ERROR,
}


@task(name="analyse", task_run_name="{acquisition.name}", cache_policy=NO_CACHE, retries=0)
def analyse(acquisition: Acquisition) -> State:
    """Waits for the acquisition's analysis; its verdict goes to the run's log and names the task
    run's state, the reason as its message. An error is the QA result, not a failure of the task
    run: it ends Completed too, named ERROR."""
    waiting = _scheduled[acquisition.key]
    either: list[Future[Any]] = [waiting.outcome, waiting.abandoned]
    wait(either, return_when=FIRST_COMPLETED)
    if not waiting.outcome.done() or waiting.outcome.cancelled():
        return Cancelled(message="not analysed: the run was stopped first; the next run analyses it")
    result = waiting.outcome.result().result
    get_run_logger().log(LOG_LEVELS[outcome(result)], "%s", verdict_line(result), extra={VERDICT: True})
    return Completed(data=result, name=f"Completed: {verdict(result)}", message=result.reason)


def named_completion(results: list[AnalysisResult], data: Any, message: str) -> State:
    """QA failures are results, not a failure of the run: Completed, named so that the UI shows them."""
    problems = sum(r.is_problem for r in results)
    name = f"Completed: {problems} QA problem{'s' if problems != 1 else ''}" if problems else "Completed"
    return Completed(data=data, name=name, message=message)


def analysis_subflow(
    section: str, acquisitions: list[Acquisition], label: str, directory: Path
) -> list[AnalysisResult]:
    """One subflow run per analysis type, mapping the analysis task over its acquisitions; its
    results in a markdown artifact keyed by the section and `label` (the unit, else the folder)."""

    # retries=0 whatever PREFECT_FLOWS_DEFAULT_RETRIES says (deployments set it for the parent flow).
    @flow(
        name=section,
        flow_run_name=f"{section} ({len(acquisitions)})",
        persist_result=False,
        retries=0,
        validate_parameters=False,  # its own typed objects, from the run itself
    )
    @cancelled_when_stopped
    def run_section(acquisitions: list[Acquisition]) -> State:
        try:
            # A task run's result is its state's data: an AnalysisResult, unless a stop cancelled it.
            outcomes: list[object] = [f.result(raise_on_failure=False) for f in analyse.map(acquisitions)]
        except BaseException:  # a stop (SIGTERM, Ctrl-C) raises here: end now, not after the analyses
            for acquisition in acquisitions:
                _abandon(_scheduled[acquisition.key].abandoned)
            raise
        results = [r for r in outcomes if isinstance(r, AnalysisResult)]  # not those a stop cancelled
        create_markdown_artifact(
            key=artifact_key(section, label),
            markdown=analysis_markdown(section, results, directory),
            description=f"{section}, {label}",
        )
        return named_completion(results, results, counted(results) or "nothing analysed")

    # A flow that returns a state gives its caller the state's data.
    return cast("list[AnalysisResult]", run_section(acquisitions))


@task(name="publish results", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30])
def publish_results(summary: RunSummary, label: str) -> None:
    if summary.results:
        create_table_artifact(
            key=artifact_key("qa-results", label),
            table=results_table(summary),
            description=f"QA results for {label}: {summary.headline()}. Whole reasons, warnings and"
            " metrics: each analysis's own artifact.",
        )


SeriesFor = Callable[[Path, str], list[MetricSeries]]  # (directory, machine) -> that machine's record


@task(name="refresh dashboard", cache_policy=NO_CACHE)
def refresh_dashboard(directory: Path, summary: RunSummary, series_for: SeriesFor) -> list[Latest]:
    """For each machine this run has results of: its dashboard rewritten from the record, this run's
    metrics against their baselines as a markdown artifact and a link artifact to the dashboard, both
    keyed by the machine. Returns this run's metrics, most urgent first, for the e-mail."""
    machines = sorted({r.unit for r in summary.results if r.unit and r.status is not Status.IGNORED})
    reports = {display_path(pdf, directory) for r in summary.results if (pdf := report_path(r, directory))}
    now = dt.datetime.now(dt.UTC)
    trends: list[Latest] = []
    for machine in machines:
        series = series_for(directory, machine)
        if not series:  # nothing recorded for it: no dashboard, rather than an empty one
            continue
        page = write_dashboard(series, machine, directory, now)
        latest = latest_first(series, result_ids_of(series, reports))
        trends += latest
        create_markdown_artifact(
            key=artifact_key("qa-record", machine),
            markdown=run_markdown(latest, machine, str(page)),
            description=f"{machine}: this run's metrics against their baselines and levels",
        )
        create_link_artifact(
            key=artifact_key("qa-dashboard", machine),
            link=page.as_uri(),
            link_text=f"{machine} QA dashboard ({page})",
            description=f"{machine}: every metric's history (one HTML file, opens offline)",
        )
    return sorted(trends, key=lambda x: x.standing)


def record_views(directory: Path, summary: RunSummary, series_for: SeriesFor) -> list[Latest]:
    """`refresh_dashboard`, whose failure never changes a run's results or exit status: it is
    logged, and the e-mail goes without the record's headings."""
    state = refresh_dashboard(directory, summary, series_for, return_state=True)
    if state.is_failed():
        get_run_logger().warning("the dashboard was not refreshed: %s", state.message)
        return []
    return cast("list[Latest]", state.result())


@task(name="pending review", cache_policy=NO_CACHE)
def publish_pending_reviews(directory: Path, summary: RunSummary) -> int:
    """For each machine this run has results of: what is pending review in its trail, as a markdown
    artifact keyed by the machine, with a link to the machine's review deployment. Returns how many
    results are pending."""
    machines = sorted(
        {r.unit or "" for r in summary.results if r.status in REVIEWED and r.analysis}
        | ({summary.unit} if summary.unit else set())  # a night with nothing new still lists them
    )
    if not machines:
        return 0
    link = review_deployment_link()
    trail = Trail(directory)
    try:
        waiting = 0
        for machine in machines:
            found = queue.items(trail, machine)
            label = machine or directory.name
            markdown = pending_markdown(found, label, link)
            waiting += sum(i.state is queue.State.PENDING for i in found)
            create_markdown_artifact(
                key=artifact_key("qa-review", label),
                markdown=markdown,
                description=f"{label}: results pending review",
            )
        return waiting
    finally:
        trail.close()


def review_deployment_link() -> str:
    """The UI page of the review deployment beside this run's nightly one (`<name>-review` beside
    `<name>-nightly`); none for a run that no such deployment started, or without a UI."""
    from prefect.exceptions import ObjectNotFound

    ui = get_current_settings().ui_url
    context = FlowRunContext.get()
    if not ui or context is None or context.flow_run is None or context.flow_run.deployment_id is None:
        return ""
    with get_client(sync_client=True) as client:
        nightly = client.read_deployment(context.flow_run.deployment_id)
        if not nightly.name.endswith("-nightly"):
            return ""
        try:
            review = client.read_deployment_by_name(
                f"review-qa/{nightly.name.removesuffix('-nightly')}-review"
            )
        except ObjectNotFound:
            return ""
    return f"{ui.rstrip('/')}/deployments/deployment/{review.id}"


def pending_reviews(directory: Path, summary: RunSummary) -> None:
    """`publish_pending_reviews`, whose failure never changes a run's results or exit status."""
    state = publish_pending_reviews(directory, summary, return_state=True)
    if state.is_failed():
        get_run_logger().warning("the pending-review artifact was not written: %s", state.message)


@task(name="notify", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def notify(ledger: Ledger, email: EmailSettings, run_id: str) -> State:
    """Every pending message, earlier runs' first. A failure raises, so Prefect retries it; what
    still fails stays pending in the ledger for the next run."""
    sent = send_pending(ledger, email, run_id, get_run_logger())
    return Completed(message=f"{sent} e-mail(s) sent" if sent else "nothing to send")


def flow_run_link() -> str:
    """This flow run's page in the Prefect UI: PREFECT_UI_URL, else the UI of PREFECT_API_URL's
    server; none for a run on Prefect's temporary server, which ends with the run."""
    ui = get_current_settings().ui_url
    context = FlowRunContext.get()
    if not ui or context is None or context.flow_run is None:
        return ""
    return f"{ui.rstrip('/')}/runs/flow-run/{context.flow_run.id}"


def send_notifications(run: Run, summary: RunSummary, trends: list[Latest] | None = None) -> None:
    """Called once the results are recorded and their outputs written. E-mail never changes a
    run's results or exit status: whatever happens ends up in `summary.notifications`. `trends`:
    this run's metrics against the record (`record_views`)."""
    logger = get_run_logger()
    email = run.settings.email
    try:
        # In the local time zone: a scheduled test is due on a day of the clinic's.
        now = dt.datetime.now().astimezone()
        due = reminders(run.directory, run.settings, now) if email.enabled else NO_REMINDERS
        queue_run_mail(
            run.ledger, summary, email, run.run_id, run_link=flow_run_link(), trends=trends, reminders=due
        )
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
