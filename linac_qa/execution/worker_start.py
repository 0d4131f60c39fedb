"""The start of an analysis worker process. Imports nothing heavy: a spawned worker imports the
module of its initializer before it can run it, and pylinac's import takes seconds (tens on a busy
machine), during which a worker of a run killed meanwhile would not yet be watching its run."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from multiprocessing.synchronize import Event

import psutil

# How often a worker checks that its run is still alive.
PARENT_POLL_SECONDS = 0.5

_stopping: Event | None = None  # in a worker: set once its pool's run is asked to stop


def init_worker(run: int, stopping: Event | None = None) -> None:
    """`run`: the PID of the run that started the pool (not `os.getppid()` here: a worker that
    starts after its run was killed has been handed to another parent already). `stopping`: the
    pool's flag, set when its run is asked to stop."""
    global _stopping
    _stopping = stopping
    _exit_with_run(run)
    # Ctrl-C on a terminal, and SIGTERM from systemd or a container stopping, reach every process
    # of the group: the run decides what stops (a watch lets the analyses in progress finish), and a
    # worker killed mid-analysis would turn a good acquisition into an error. pebble still stops a
    # worker (a time limit) with SIGKILL after its SIGTERM goes unheeded.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # pylinac prints to stdout; the summary owns stdout, so the worker's goes to stderr.
    os.dup2(2, 1)
    os.environ.setdefault("MPLBACKEND", "Agg")
    warnings.filterwarnings("ignore")
    import matplotlib

    matplotlib.use("Agg")
    import linac_qa.analyses  # noqa: F401  (pays pylinac's import once per worker)


def _exit_with_run(run: int) -> None:
    """A run that is killed (SIGKILL, the OOM killer, a closed terminal) cannot stop its workers,
    and a busy worker would go on writing outputs nobody records, perhaps while the next run
    analyses the same files. So each worker watches its run and exits the moment it is gone."""

    def watch() -> None:
        while os.getppid() == run and psutil.pid_exists(run):
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)  # no cleanup: the next run removes temporaries and the scratch folder

    threading.Thread(target=watch, name="watch-run", daemon=True).start()


def run_stopping() -> bool:
    """In a worker: whether its run was asked to stop. pebble hands every queued task to the
    workers' pipe at once, and a task cancelled while it waits there still reaches a worker, which
    would begin it and be ended midway, perhaps while writing its outputs."""
    return _stopping is not None and _stopping.is_set()
