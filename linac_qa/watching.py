"""Watch mode without Prefect: when to start the next batch.

The watch looks at the directory and the sources every `poll-seconds` (file-system events, where
the OS sends them, wake it sooner; network shares often send none, so polling always goes on). A
batch starts when there is something new and settled in a folder where nothing is still being
written: a CBCT arrives as hundreds of slices, and the series must be analysed once, after it stops
growing (a batch started for another folder holds such a set back too: see `grouping.plan`). So
that a folder written to without pause cannot hold its files forever, settled work waits at most
`BUSY_FOLDER_LIMIT` settle periods. What a batch left waiting (a dynalog half) does not start
another batch until something changes, or an hour has passed (its group may have timed out).

Looking costs a `stat` per file and the ledger: no file is opened.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from linac_qa.config import Settings
from linac_qa.execution.pool_base import Stop
from linac_qa.grouping.plan import folder_of
from linac_qa.intake.discovery import discover
from linac_qa.intake.sources import scan_sources
from linac_qa.records.ledger import Ledger
from linac_qa.run import DirectoryBusy, DirectoryNotFound, resolve_directory

log = logging.getLogger(__name__)

BUSY_FOLDER_LIMIT = 10  # settle periods
RECHECK_WAITING_SECONDS = 3600.0
# How long a watch waits before it looks again for a directory that is not there: doubling from
# the first to the last, so that a share mounted late is found soon and one gone for days costs little.
DIRECTORY_RETRY_SECONDS = (10.0, 300.0)
# Events come in bursts (a CT series): after one, wait this long for the rest before looking.
EVENT_COALESCE_SECONDS = 0.5


@dataclass(frozen=True)
class Pending:
    # New and settled: path relative to the directory (where a source file will be copied to), size,
    # mtime.
    ready: frozenset[tuple[str, int, int]]
    busy_folders: frozenset[str] = frozenset()  # where a file is still being written
    warnings: tuple[str, ...] = ()

    def quiet(self, paths: frozenset[tuple[str, int, int]]) -> bool:
        return any(folder_of(p) not in self.busy_folders for p, _, _ in paths)


def pending_work(directory: Path, settings: Settings, now: float | None = None) -> Pending:
    ledger = Ledger.open(directory)
    try:
        found = discover(directory, settings, ledger.known(), now=now)
        sources = scan_sources(directory, settings, ledger, now=now)
    finally:
        ledger.close()
    # A touched but identical file is hashed by every look until a batch records its new mtime.
    ready = {(s.path, s.size, s.mtime_ns) for s in [*found.stamps, *found.changed_but_identical]}
    ready |= {
        (c.destination.relative_to(directory).as_posix(), c.stamp.size, c.stamp.mtime_ns)
        for c in sources.ready
    }
    busy = frozenset(found.busy_folders | sources.busy_folders)
    return Pending(frozenset(ready), busy, tuple(sources.warnings))


@dataclass
class BatchTrigger:
    """Decides, from what is pending, whether a batch starts now."""

    settle_seconds: float
    last_batch: frozenset[tuple[str, int, int]] = frozenset()
    last_batch_at: float = float("-inf")
    first_ready_at: float | None = None

    def due(self, pending: Pending, now: float) -> bool:
        fresh = pending.ready - self.last_batch
        if not pending.ready:
            self.first_ready_at = None
            return False
        if not fresh:
            return now - self.last_batch_at >= RECHECK_WAITING_SECONDS
        if self.first_ready_at is None:
            self.first_ready_at = now
        busy_for = now - self.first_ready_at
        return pending.quiet(fresh) or busy_for >= BUSY_FOLDER_LIMIT * max(self.settle_seconds, 1.0)

    def started(self, pending: Pending, now: float) -> None:
        self.last_batch, self.last_batch_at, self.first_ready_at = pending.ready, now, None


class Wakeup:
    """File-system events where available; `wait` returns on an event or after `timeout`."""

    def __init__(self, folders: list[Path]):
        self._event = threading.Event()
        self._observer = None
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer

            wake = self._event

            class Handler(FileSystemEventHandler):
                def on_any_event(self, event: object) -> None:
                    wake.set()

            observer = Observer()
            for folder in folders:
                if folder.is_dir():
                    observer.schedule(Handler(), str(folder), recursive=True)
            observer.daemon = True
            observer.start()
            self._observer = observer
        except Exception as exc:  # e.g. the inotify watch limit: polling alone still works
            log.warning("file-system events unavailable (%s); polling only", exc)

    def wait(self, timeout: float, stop: Stop) -> None:
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._event.wait(min(left, 0.5)):
                stop.wait(EVENT_COALESCE_SECONDS)
                self._event.clear()
                return

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)


def wait_for_directory(
    given: str | None,
    settings: Settings,
    stop: Stop,
    warn: Callable[[str], None],
    retry: tuple[float, float] = DIRECTORY_RETRY_SECONDS,
) -> Path | None:
    """DIR once it is there, saying why it waits and when it looks again; None if stopped first.
    A started service (the watch deployment) must not die for good because a share was mounted
    after it; anything else wrong with DIR is raised."""
    delay, longest = retry
    while True:
        try:
            return resolve_directory(given, settings)
        except DirectoryNotFound as exc:
            warn(f"{exc}: looking again in {delay:g} s")
        if stop.wait(delay):
            return None
        delay = min(delay * 2, longest)


def watch(
    directory: Path,
    settings: Settings,
    run_batch: Callable[[], None],
    stop: Stop,
    on_warning: Callable[[str], None] = log.warning,
) -> int:
    """Runs batches until `stop` is set (the first Ctrl-C: the batch in progress finishes); returns
    how many ran. A batch that fails is logged and
    tried again at the next poll: it recorded what it finished, so the retry does only the rest."""
    general = settings.general
    trigger = BatchTrigger(general.settle_seconds)
    wakeup = Wakeup([directory, *general.sources])
    warned: set[str] = set()
    batches = 0
    try:
        while not stop.is_set():
            now = time.time()
            try:
                pending = pending_work(directory, settings, now)
            except OSError as exc:  # the share went away: say so once a poll, keep watching
                on_warning(f"cannot look at {directory}: {exc}")
                pending = Pending(frozenset())
            for warning in set(pending.warnings) - warned:  # once, not every poll
                on_warning(warning)
            warned = set(pending.warnings)
            if trigger.due(pending, now) and not stop.is_set():
                try:
                    run_batch()
                except DirectoryBusy as exc:  # a nightly run has it: try again at the next poll
                    log.info("%s; trying again in %g s", exc, general.poll_seconds)
                except Exception:
                    log.exception("a batch failed; trying again in %g s", general.poll_seconds)
                else:
                    trigger.started(pending, now)
                    batches += 1
                    continue  # look again at once: files may have arrived during the batch
            wakeup.wait(general.poll_seconds, stop)
    finally:
        wakeup.close()
    return batches
