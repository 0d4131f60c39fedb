"""The dashboard refresh as a task of a flow on a real Prefect server (the session's): it writes the
machine's dashboard, creates the per-run markdown artifact and the link artifact keyed by the
machine, hands the run's metrics to the e-mail, and a failing record reader changes nothing but a
warning. The record's reader is stubbed here only: the views never read the record themselves."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

from linac_qa.history.latest import Latest
from linac_qa.history.series import MetricSeries
from linac_qa.model import AnalysisResult, Status
from linac_qa.records.summary import RunSummary
from linac_qa.testing.histories import seeded_histories

NOW = dt.datetime(2024, 3, 5, 6, 0, tzinfo=dt.UTC)


def _seeded(directory: Path, machine: str) -> list[MetricSeries]:
    return seeded_histories(machine=machine, metrics=3, points=30)


def _broken(directory: Path, machine: str) -> list[MetricSeries]:
    raise OSError("the record is on a share that went away")


def _summary(root: Path) -> RunSummary:
    """Tonight's results: the last picket fence of the seeded history and the failing flatness."""
    last = [s.points[-1] for s in _seeded(root, "TrueBeam1")[:2]]
    results = [
        AnalysisResult(
            analysis="field-analysis",
            model=None,
            files=[f"night/{p.result_id}.dcm"],
            status=Status.PASSED,
            reason="",
            outputs=[str(p.report)],
            unit="TrueBeam1",
            judged=True,
        )
        for p in last
    ]
    return RunSummary(directory=str(root), unit="TrueBeam1", started=NOW, finished=NOW, results=results)


def test_the_refresh_task_writes_the_dashboard_and_its_artifacts(tmp_path: Path, prefect_api: str) -> None:
    from prefect import flow
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.tasks import record_views

    @flow(name="record-views-test", persist_result=False)
    def views(broken: bool) -> list[Latest]:
        return record_views(tmp_path, _summary(tmp_path), _broken if broken else _seeded)

    with temporary_settings({PREFECT_API_URL: prefect_api}):
        trends = views(False)
        assert views(True) == []  # logged as a warning; the run goes on
        artifacts = asyncio.run(_latest_artifacts(["qa-record-truebeam1", "qa-dashboard-truebeam1"]))
        # The flow runs' logs go to this server now, not at exit, when the session's server is gone.
        APILogWorker.drain_all(timeout=10)
    assert [x.word for x in trends] == ["ACTION", "drift"]
    page = tmp_path / "qa-dashboard-TrueBeam1.html"
    assert page.is_file()
    record, link = artifacts["qa-record-truebeam1"], artifacts["qa-dashboard-truebeam1"]
    assert record.type == "markdown" and "| **ACTION** | field-analysis flatness (energy=6X) |" in record.data
    assert "picket-fence max_error_mm" in record.data and "symmetry" not in record.data  # not tonight's
    assert f"]({page.as_uri()})" in link.data  # Prefect keeps a link artifact as markdown


async def _latest_artifacts(keys: list[str]) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    newest: dict[str, Any] = {}
    for artifact in sorted(found, key=lambda a: a.created):
        newest[artifact.key] = artifact
    return newest
