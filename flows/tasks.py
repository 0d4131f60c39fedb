"""Prefect tasks: thin wrappers that give each step a task run in the UI. The work itself lives in
plain functions under `linac_qa`."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from linac_qa.classify import classify_files
from linac_qa.config import Settings
from linac_qa.discovery import Discovery, discover
from linac_qa.ledger import Known
from linac_qa.model import Acquisition, AnalysisResult, ClassifiedFile
from linac_qa.reporting import analysis_markdown, artifact_key, results_table
from linac_qa.runner import JobOutcome
from linac_qa.summary import RunSummary

# Analyses are scheduled on the worker pool before any subflow starts, so no core idles between
# modalities; the analysis task runs only wait for their own acquisition's outcome. The futures
# cannot be task parameters (Prefect records parameters), so they wait here, keyed by acquisition.
_scheduled: dict[str, Future[JobOutcome]] = {}


@contextmanager
def scheduled_analyses(futures: dict[str, Future[JobOutcome]]) -> Iterator[None]:
    _scheduled.update(futures)
    try:
        yield
    finally:
        for key in futures:
            _scheduled.pop(key, None)


@task(name="discover", cache_policy=NO_CACHE)
def discover_files(directory: Path, settings: Settings, known: dict[str, Known], force: bool) -> Discovery:
    return discover(directory, settings, known, force=force)


@task(name="classify", cache_policy=NO_CACHE)
def classify(directory: Path, paths: list[str], settings: Settings) -> list[ClassifiedFile]:
    return classify_files(directory, paths, settings)


@task(name="analyse", task_run_name="{acquisition.name}", cache_policy=NO_CACHE)
def analyse(acquisition: Acquisition) -> AnalysisResult:
    return _scheduled[acquisition.key].result().result


def analysis_subflow(section: str, acquisitions: list[Acquisition], unit: str | None) -> list[AnalysisResult]:
    """One subflow run per analysis type, mapping the analysis task over its acquisitions."""

    @flow(name=section, flow_run_name=f"{section} ({len(acquisitions)})", persist_result=False)
    def run_section(acquisitions: list[Acquisition]) -> list[AnalysisResult]:
        results = [f.result() for f in analyse.map(acquisitions)]
        create_markdown_artifact(
            key=artifact_key(section, unit), markdown=analysis_markdown(section, results), description=section
        )
        return results

    return run_section(acquisitions)


@task(name="publish results", cache_policy=NO_CACHE)
def publish_results(summary: RunSummary) -> None:
    if summary.results:
        create_table_artifact(
            key=artifact_key("qa-results", summary.unit),
            table=results_table(summary),
            description=f"QA results for {summary.unit or summary.directory}: {summary.headline()}",
        )
