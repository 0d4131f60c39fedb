"""The Prefect API of a command-line run, made sure of before the run touches DIR.

A run that cannot reach Prefect cannot be done, and that is not a QA result: the command line says
why in one line and exits with status 4 (docs/design.md section 2), where Prefect would have raised from
inside the flow call, after a wait of its own, with exit status 1, which means QA failures.

With PREFECT_API_URL the server must answer its health check. Without it, Prefect starts a
temporary server; on a loaded machine that takes longer than Prefect's default allowance of 20 s,
so the run allows START_SECONDS unless the user set PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS
(environment or Prefect profile). Each is tried ATTEMPTS times. The temporary server is started as
Prefect would (the same class, so every Prefect client of the process uses it), but in its own
process, tied to the run (flows/server_guard.py).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import get_current_settings

START_SECONDS = 180
ATTEMPTS = 2
PAUSE_SECONDS = 5.0  # between two health checks of a server given by URL
# The guard stops its server within its own SHUTDOWN_SECONDS; past this the process is killed.
STOP_SECONDS = 10.0
_PROJECT_ROOT = Path(__file__).resolve().parents[1]


class ApiUnavailable(Exception):
    """The Prefect API could not be reached or started: exit status 4, nothing done."""


def connect() -> None:
    """Returns once the run's Prefect API answers; raises ApiUnavailable with a one-line reason."""
    settings = get_current_settings()
    url = settings.api.url
    if url:
        _reach(url)
    elif not settings.server.ephemeral.enabled:
        raise ApiUnavailable(
            "no PREFECT_API_URL, and Prefect's temporary server is turned off "
            "(PREFECT_SERVER_EPHEMERAL_ENABLED): nothing to run against"
        )
    else:
        ephemeral = settings.server.ephemeral
        chosen = "startup_timeout_seconds" in ephemeral.model_fields_set
        _start_temporary_server(ephemeral.startup_timeout_seconds if chosen else START_SECONDS)


def _reach(url: str) -> None:
    failure: Exception | None = None
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(PAUSE_SECONDS)
        with get_client(sync_client=True) as client:
            failure = client.api_healthcheck()
        if failure is None:
            return
    raise ApiUnavailable(
        f"the Prefect API at {url} (PREFECT_API_URL) could not be reached, {ATTEMPTS} tries: "
        f"{_brief(failure)}"
    )


def _start_temporary_server(timeout: int) -> None:
    failure: Exception | None = None
    for _ in range(ATTEMPTS):
        server = GuardedServer()
        try:
            server.start(timeout=timeout)
            return
        except Exception as exc:
            failure = exc
            server.stop()
    raise ApiUnavailable(
        f"Prefect's temporary API server did not start within {timeout} s, {ATTEMPTS} tries "
        f"({_brief(failure)}); allow it longer with PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, "
        "or set PREFECT_API_URL to a running Prefect server"
    )


def _brief(exc: Exception | None) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if exc else "no answer"
    return text[:300]


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
