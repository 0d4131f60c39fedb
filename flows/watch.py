"""`watch-directory`: the long-running watch. Copies new files from the sources, waits until they
have settled, and analyses each batch as a `process-directory` run (a subflow: one run per batch in
the UI). Ctrl-C stops it after the analyses in progress; a second Ctrl-C stops it at once. SIGTERM
(a cancel from the UI, `systemctl stop`) is Prefect's: the run ends at once, and what was in progress
is analysed by the next run (outputs are renamed into place only when whole).

    python -m flows.watch DIR [--config FILE]
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from prefect import get_run_logger
from prefect.exceptions import CancelledRun
from prefect.states import Completed

from blocks.machine_config import run_settings
from flows import attended
from flows.process import WatchBatch, _run_name, process_directory
from flows.stop_signals import Stopped, cancelled_when_stopped
from linac_qa.execution.pool_base import Stop
from linac_qa.execution.pools import make_pool
from linac_qa.run import watch_lock
from linac_qa.watching import wait_for_directory, watch

log = logging.getLogger(__name__)


# No module-level state here: serve pickles this flow (its function by value) for each run.
# A terminal's `listener=` is no parameter of the run (flows/attended.py).
@attended.attended_flow(
    name="watch-directory", flow_run_name=_run_name, persist_result=False, validate_parameters=False
)
@cancelled_when_stopped
def watch_directory(
    directory: str | None = None,
    config: str | None = None,
    config_block: str | None = None,
) -> Any:
    logger = get_run_logger()
    listener = attended.LISTENER.get()
    settings = run_settings(config, config_block)  # once: every batch runs with these
    stop = Stop()
    _stop_on_signals(stop)
    root = wait_for_directory(directory, settings, stop, logger.warning)
    if root is None:
        return Completed(message="stopped while waiting for the directory")
    # One pool for every batch: its workers stay warm (pylinac imported) between batches, and are
    # ready for the first.
    with watch_lock(root), make_pool(settings.general, stop) as pool:
        pool.warm()

        def run_batch() -> None:
            try:
                process_directory(str(root), listener=listener, batch=WatchBatch(settings, pool))
            except CancelledRun as exc:  # a second Ctrl-C, or SIGTERM: the watch ends with its batch
                raise Stopped(str(exc)) from exc

        logger.info(
            "watching %s (and %d source folder(s)) every %g s; Ctrl-C stops",
            root,
            len(settings.general.sources),
            settings.general.poll_seconds,
        )
        batches = watch(root, settings, run_batch, stop, on_warning=logger.warning)
    return Completed(message=f"stopped after {batches} batch(es)")


def _stop_on_signals(stop: Stop) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signals reach the main thread only; the process that owns it decides

    def first(signum: int, frame: FrameType | None) -> None:
        cancelled = stop.request()
        log.warning(
            "stopping after the analyses in progress (%d waiting analyses left for the next run); "
            "Ctrl-C again stops at once",
            cancelled,
        )
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, first)


if __name__ == "__main__":
    from flows.cli import watch_main

    raise SystemExit(watch_main())
