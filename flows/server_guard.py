"""The process of the temporary Prefect API server: `python -m flows.server_guard PORT`.

Prefect's own temporary server is a plain child process, which has two faults for a QA run:
- a run killed outright (SIGKILL, the OOM killer) cannot stop it, so it lives on, orphaned;
- it shares the run's process group, so a Ctrl-C on a terminal or a stop of the group stops it at
  once, and the run, which is still recording its stop, retries the dead API for a minute or more.

Here the same server (Prefect's app, the same uvicorn settings) is tied to its run instead:
- Its lifeline is its standard input, a pipe from the run. The run closes it when it is done with
  the server; when the run dies in any way, the operating system closes it. Either way the server
  stops at once: no polling of process ids, nothing platform-specific, the same on Windows.
- It ignores SIGINT and SIGTERM, and is started in a process group of its own: stopping is for the
  run to decide, and the run needs its API until it has recorded what it did.
- uvicorn serves from a thread, so it installs no signal handlers of its own.

Only the standard library is imported before the lifeline is watched, so that a run that dies
while the server is still starting does not leave it behind either.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

STARTUP_FAILURE = 3  # uvicorn's: Prefect then tries another port
# A graceful stop finishes the requests in flight; after this the server exits regardless.
SHUTDOWN_SECONDS = 5.0


def main(port: int) -> int:
    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):  # SIGBREAK: Ctrl-Break on Windows
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    done = threading.Event()  # the lifeline closed, or the server ended on its own
    threading.Thread(target=_hold_lifeline, args=(done,), name="lifeline", daemon=True).start()

    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            "prefect.server.api.server:create_app",
            factory=True,
            host="127.0.0.1",
            port=port,
            log_level="error",
            lifespan="on",
        )
    )

    def serve() -> None:
        try:
            server.run()
        finally:
            done.set()

    serving = threading.Thread(target=serve, name="uvicorn", daemon=True)
    serving.start()
    done.wait()
    if not serving.is_alive():  # it ended by itself: a port taken, a broken database
        return 0 if server.started else STARTUP_FAILURE
    server.should_exit = True
    serving.join(SHUTDOWN_SECONDS)
    return 0


def _hold_lifeline(done: threading.Event) -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        done.set()


if __name__ == "__main__":
    code = main(int(sys.argv[1]))
    sys.stderr.flush()
    # No interpreter shutdown: its final garbage collection of the server's heap takes seconds,
    # and a thread still stuck in a request must not hold the exit.
    os._exit(code)
