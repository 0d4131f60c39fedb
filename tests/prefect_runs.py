"""A command-line run read back from the Prefect server it ran against: its process-directory flow
run, subflows, task runs, logs and artifacts, as the UI shows them."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class ServerRecord:
    flow_run: Any
    subflows: list[Any]
    task_runs: list[Any]
    logs: list[Any]
    artifacts: dict[str, Any]


def read_back(api: str, directory: Path, began: dt.datetime, flow: str = "process-directory") -> ServerRecord:
    """The run of `flow` on `directory` that started after `began`."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # Prefect reads its settings once, at import, and another module may import it at collection,
    # before the server fixture sets PREFECT_API_URL: name the server explicitly.
    with temporary_settings({PREFECT_API_URL: api}):
        return asyncio.run(_read(flow, str(directory.resolve()), began))


async def _read(flow: str, directory: str, began: dt.datetime) -> ServerRecord:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        FlowRunFilterStartTime,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    async with get_client() as client:
        # The server is shared with other modules, whose deployments have scheduled many runs that
        # have not started: this folder's run only, among those started since.
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])),
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=began)),
            sort=FlowRunSort.START_TIME_DESC,
            limit=200,
        )
        [parent] = [r for r in runs if r.parameters.get("directory") == directory]
        subflows = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id]))
        )
        ids = [parent.id, *(r.id for r in subflows)]
        task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": ids}))
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids))
        )
    return ServerRecord(parent, subflows, task_runs, logs, {a.key: a for a in artifacts})
