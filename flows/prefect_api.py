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

import time

from prefect.client.orchestration import get_client
from prefect.settings import get_current_settings

START_SECONDS = 180
ATTEMPTS = 2
PAUSE_SECONDS = 5.0  # between two health checks of a server given by URL


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
    # Prefect's server package takes seconds of CPU to import: only a run that starts one imports it.
    from flows.temporary_server import GuardedServer

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
