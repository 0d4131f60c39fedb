"""Prefect's temporary server as a command-line run starts it (flows/prefect_api.py), in its own
process tied to the run (flows/server_guard.py). A module of its own: Prefect's server package takes
seconds of CPU to import, which a run against PREFECT_API_URL never needs."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import get_current_settings

# The guard stops its server within its own SHUTDOWN_SECONDS; past this the process is killed.
STOP_SECONDS = 10.0
_PROJECT_ROOT = Path(__file__).resolve().parents[1]


class GuardedServer(SubprocessASGIServer):
    """Prefect's temporary server, run by flows/server_guard.py. Creating it before Prefect does
    makes it the instance that Prefect's clients use (the class keeps one instance per port)."""

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        env = {
            **os.environ,
            # as Prefect runs its temporary server: no UI, only the services it needs
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
            **get_current_settings().to_environment_variables(exclude_unset=True),
            # `-m flows.server_guard` must resolve to this project wherever the run was started
            "PYTHONPATH": os.pathsep.join(filter(None, [str(_PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
        }
        return subprocess.Popen(
            [sys.executable, "-m", "flows.server_guard", str(self.port)],
            env=env,
            stdin=subprocess.PIPE,  # the lifeline
            **_own_process_group(),
        )

    def stop(self) -> None:
        process = self.server_process
        if process is not None and process.stdin is not None and not process.stdin.closed:
            process.stdin.close()  # the guard stops the server at once
            with contextlib.suppress(subprocess.TimeoutExpired):  # then Prefect's stop kills it
                process.wait(timeout=STOP_SECONDS)
        super().stop()


def _own_process_group() -> dict[str, Any]:
    """A Ctrl-C on the terminal, or a signal to the run's process group, is for the run alone."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}
