"""The analyses on an existing Dask cluster (`general.executor.dask-address`), for clinics that
outgrow one machine.

`distributed.Client` directly, not prefect-dask: with prefect-dask's task runner every analysis
would be a Prefect task run executed inside a Dask worker, so each worker would need the Prefect API
(and, with no server, would start a temporary one of its own). Prefect stays in this process, as
with the local pool: the workers get plain jobs (`Job.model_dump(mode="json")`) and send back plain
outcomes (`JobOutcome` as a dict), and the task runs of the UI are the parent's.

What the cluster must offer:
- Every worker sees the data at the same path as this run (a shared folder, mounted identically):
  the job names its folder, and the worker reads the inputs and writes the outputs there. A worker
  that cannot see it makes that acquisition an `error` naming the folder and the worker's host.
  The path is passed as it is: a run on Windows (`\\\\server\\share\\QA`) needs Windows workers.
- Every worker has linac-qa-flows (and so pylinac) installed, the same versions as here: a
  worker without it, or with other versions (other versions can judge differently), makes the
  acquisition an `error` saying so. The function sent to the workers is pickled by value and
  imports linac_qa only once it runs: a task that referenced linac_qa by name would fail while
  being unpickled, which kills the worker, not the task.
- Workers with one thread each (`dask worker --nthreads 1`, more processes for more cores):
  pylinac draws with matplotlib's pyplot, which is not thread-safe, so within one worker process our
  analyses take turns (a lock) and extra threads only wait.

Time limits are counted from the moment a worker starts the analysis (it tells us through a Dask
event), not from submission: a long queue is not a slow analysis. Dask cannot stop a running
thread, so an analysis past its limit is recorded as an `error` and its Dask task cancelled, but it
goes on in its worker until it ends (its outputs, if it ever writes them, are not recorded). If no
analysis starts or ends for the time limit plus a margin while some wait (no workers, or all of
them stuck), the waiting ones become errors rather than hang the run and its directory lock.

A worker that dies during an analysis is replaced by its nanny and Dask tries the analysis again
on another worker, up to the scheduler's `distributed.scheduler.allowed-failures` (3); after that
the acquisition is an `error`. Worker output (pylinac prints) stays in the workers' logs.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any

from linac_qa.execution.pool_base import OnDone, Stop, cancel, failed_outcome, run_serialised
from linac_qa.execution.runner import Job, JobOutcome, brief_error
from linac_qa.records import versions

__all__ = ["CONNECT_TIMEOUT_SECONDS", "DaskPool", "DaskUnavailable"]

CONNECT_TIMEOUT_SECONDS = 10.0
# The workers announce each start under this topic; one fixed name, filtered on our own task keys
# (the scheduler keeps a bounded log per topic, so a name per run would grow it forever).
STARTED_TOPIC = "linac-qa-started"
# A run with waiting analyses and neither a start nor an end for the time limit plus this long has
# no usable worker.
STALL_MARGIN_SECONDS = 60.0
MONITOR_SECONDS = 0.5
_logger = logging.getLogger(__name__)


class DaskUnavailable(RuntimeError):
    """The configured Dask scheduler cannot be reached: the run fails before any analysis."""


@dataclass
class _Entry:
    job: Job
    on_done: OnDone
    promise: Future[JobOutcome]
    future: Any = None  # distributed.Future
    started: float | None = None  # time.monotonic() when a worker began it
    settled: bool = False


class DaskPool:
    def __init__(
        self,
        address: str,
        timeout_seconds: float,
        *,
        stall_margin: float = STALL_MARGIN_SECONDS,
        stop: Stop | None = None,
    ):
        try:
            from distributed import Client
        except ImportError as exc:
            raise DaskUnavailable(
                f"general.executor.dask-address ({address}) needs Dask's client:"
                " pip install 'linac-qa-flows[dask]'"
            ) from exc
        self.address = address
        self.timeout = timeout_seconds
        self.stall_limit = timeout_seconds + stall_margin
        try:
            self._client = Client(address, timeout=CONNECT_TIMEOUT_SECONDS, set_as_default=False)
        except Exception as exc:  # OSError (refused, timed out, unknown host), TimeoutError, ValueError
            raise DaskUnavailable(
                f"cannot reach the Dask scheduler at {address} (general.executor.dask-address) within "
                f"{CONNECT_TIMEOUT_SECONDS:g} s: {brief_error(exc)}; start the cluster, fix the address, or"
                " set it to null to analyse on this machine"
            ) from exc
        self._lock = threading.Lock()  # on_done, as in AnalysisPool
        # _entries and the fields of each entry. Re-entrant, and every loop over _entries works on a
        # copy: a watch's Ctrl-C handler calls cancel_pending() in the main thread, which may be in
        # the middle of submit() or close() at that moment.
        self._state = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._progress = time.monotonic()
        self._versions = {"linac-qa-flows": versions.linac_qa(), "pylinac": versions.pylinac()}
        self._remote = _ByValue(_bootstrap)
        self._closed = threading.Event()
        self._stop = stop or Stop()
        self._stop.attach(self)
        self._client.subscribe_topic(STARTED_TOPIC, self._started)
        self._monitor = threading.Thread(target=self._watch, name="dask-pool-limits", daemon=True)
        self._monitor.start()
        workers = len(self._client.scheduler_info().get("workers", {}))
        if not workers:
            _logger.warning("the Dask cluster at %s has no workers (yet): analyses wait for one", address)

    # ------------------------------------------------------------------------------------ Pool
    def submit(self, job: Job, on_done: OnDone) -> Future[JobOutcome]:
        promise: Future[JobOutcome] = Future()
        if self._stop.is_set():  # a watch is stopping: nothing new starts, as in AnalysisPool
            cancel(promise)
            return promise
        key = f"linac-qa-{job.acquisition.analysis}-{uuid.uuid4().hex}"
        entry = _Entry(job, on_done, promise)
        with self._state:
            if not self._entries:
                self._progress = time.monotonic()  # an idle pool has not stalled
            self._entries[key] = entry
        try:
            future = self._client.submit(
                self._remote,
                job.model_dump(mode="json"),
                key,
                self._versions,
                key=key,
                pure=False,
                retries=0,  # a verdict is not retried (a dead worker is, by Dask: see above)
            )
        except Exception as exc:  # the connection to the scheduler is gone, say
            self._settle(key, failed_outcome(job, f"not sent to the Dask cluster: {brief_error(exc)}"))
            return promise
        with self._state:
            entry.future = future
        future.add_done_callback(lambda fut: self._finished(key, fut))
        return promise

    def warm(self, expected: int | None = None) -> None:
        """The cluster's workers are its own, running already."""

    def cancel_pending(self) -> int:
        with self._state:
            waiting = {k: e for k, e in list(self._entries.items()) if e.started is None and not e.settled}
            for key, entry in waiting.items():
                entry.settled = True
                del self._entries[key]
        self._cancel_tasks([e.future for e in waiting.values()])
        for entry in waiting.values():
            cancel(entry.promise)
        return len(waiting)

    def abandon(self) -> None:
        """The process is ending on a stop signal: the waiting analyses never start. Dask cannot end
        a running thread: those in progress go on in their workers, unrecorded."""
        self.cancel_pending()

    def close(self) -> None:
        """Waits for the analyses still running (each bounded by its time limit), then lets go of
        the cluster: the client is closed, the cluster itself is left running."""
        with self._state:
            promises = [e.promise for e in list(self._entries.values())]
        wait(promises)
        self._shutdown()

    def __enter__(self) -> DaskPool:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:  # the run is failing: nothing more will be recorded
            with self._state:
                entries = list(self._entries.values())
                for entry in entries:
                    entry.settled = True
                self._entries.clear()
            self._cancel_tasks([e.future for e in entries])
            for entry in entries:
                cancel(entry.promise)
        self.close()

    # ------------------------------------------------------------------------------- internals
    def _started(self, event: tuple[float, Any]) -> None:
        """A worker began one of the analyses. Runs in the client's event-loop thread, so it takes
        no lock (what holds one may be waiting for that loop); a dict look-up and two assignments
        are atomic, and a mark on an entry settled meanwhile is ignored."""
        _, key = event
        entry = self._entries.get(key)
        if entry is not None:
            entry.started = self._progress = time.monotonic()

    def _finished(self, key: str, fut: Any) -> None:
        """Dask's callback thread: the task ended, failed, or was cancelled."""
        with self._state:
            entry = self._entries.get(key)
        if entry is None or entry.settled:
            return  # already settled: a time-out, cancel_pending() or a failing run
        job = entry.job
        if fut.cancelled():
            outcome = failed_outcome(job, "the Dask cluster cancelled the analysis (restarted or shut down?)")
        else:
            try:
                outcome = _outcome(job, fut.result())
            except Exception as exc:
                outcome = failed_outcome(job, _reason(exc))
        self._settle(key, outcome)

    def _settle(self, key: str, outcome: JobOutcome) -> None:
        """Records the outcome once, whoever gets there first (the task, its time limit)."""
        with self._state:
            entry = self._entries.pop(key, None)
            if entry is None or entry.settled:
                return
            entry.settled = True
            self._progress = time.monotonic()
        try:
            with self._lock:
                entry.on_done(entry.job, outcome)
        finally:
            if not entry.promise.cancelled():
                entry.promise.set_result(outcome)

    def _watch(self) -> None:
        while not self._closed.wait(MONITOR_SECONDS):
            now = time.monotonic()
            with self._state:
                entries = list(self._entries.items())
                idle = now - self._progress > self.stall_limit
            late = [k for k, e in entries if e.started is not None and now - e.started > self.timeout]
            stalled = [k for k, e in entries if e.started is None] if idle else []
            for key in late:
                # The client stops waiting; Dask cannot kill a running thread, so the analysis may
                # go on in its worker until it ends by itself.
                self._settle_key(key, f"analysis stopped after the time limit of {self.timeout:g} s")
            for key in stalled:
                self._settle_key(
                    key,
                    f"no Dask worker at {self.address} started this analysis within {self.stall_limit:g} s"
                    " (no workers, or all busy past their time limit)",
                )
            chosen = {*late, *stalled}
            self._cancel_tasks([e.future for k, e in entries if k in chosen])

    def _cancel_tasks(self, futures: list[Any]) -> None:
        live = [f for f in futures if f is not None]
        if live:
            try:
                self._client.cancel(live)
            except Exception as exc:  # the connection is gone: the scheduler drops them with it
                _logger.warning("could not cancel %d Dask task(s): %s", len(live), brief_error(exc))

    def _settle_key(self, key: str, reason: str) -> None:
        with self._state:
            entry = self._entries.get(key)
        if entry is None:
            return
        try:
            self._settle(key, failed_outcome(entry.job, reason))
        except Exception:  # from on_done: logged, and the monitor goes on watching the others
            _logger.exception("recording the outcome of %s failed", entry.job.acquisition.name)

    def _shutdown(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._monitor.join()
        try:
            self._client.unsubscribe_topic(STARTED_TOPIC)
        finally:
            self._client.close()


def _outcome(job: Job, data: dict[str, Any]) -> JobOutcome:
    if "problem" in data:  # the worker could not run it: no linac_qa, other versions, no folder
        return failed_outcome(job, str(data["problem"]))
    return JobOutcome.model_validate(data)


def _reason(exc: BaseException) -> str:
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        tries = exc.allowed_failures + 1
        where = getattr(exc.last_worker, "address", "?")
        return (
            f"Dask workers died during the analysis ({tries} attempt{'s' if tries != 1 else ''}, the last"
            f" on {where}); see that worker's log"
        )
    return brief_error(exc)


# ------------------------------------------------------------------------------------ worker side
class _ByValue:
    """A function shipped by value: it unpickles as `cloudpickle.loads(<its code>)`, so a worker
    needs nothing but cloudpickle (which Dask itself needs) to load it."""

    def __init__(self, fn: Any):
        import sys

        import cloudpickle

        self.fn = fn
        module = sys.modules[fn.__module__]
        cloudpickle.register_pickle_by_value(module)
        try:
            self.payload: bytes = cloudpickle.dumps(fn)
        finally:
            cloudpickle.unregister_pickle_by_value(module)

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        import cloudpickle

        return cloudpickle.loads, (self.payload,)


def _bootstrap(job: dict[str, Any], key: str, wanted: dict[str, str]) -> dict[str, Any]:
    """The task a Dask worker runs. Sent by value: it must use nothing of this module's globals."""
    import socket

    try:
        from linac_qa.execution.dask_pool import run_on_worker
    except ImportError as exc:
        return {
            "problem": f"the Dask worker on {socket.gethostname()} cannot import linac_qa"
            f" ({type(exc).__name__}: {exc}): install linac-qa-flows {wanted.get('linac-qa-flows')}"
            " in every worker's environment"
        }
    return run_on_worker(job, key, wanted)


_worker_lock = threading.Lock()  # one analysis at a time per worker process (pyplot)
_worker_ready = False


def run_on_worker(job: dict[str, Any], key: str, wanted: dict[str, str]) -> dict[str, Any]:
    """One job in a Dask worker: the same `run_serialised` as a local worker process, after checking
    that this worker can do it as the run would."""
    import socket
    from pathlib import Path

    host = socket.gethostname()
    here = {"linac-qa-flows": versions.linac_qa(), "pylinac": versions.pylinac()}
    if here != wanted:
        theirs = ", ".join(f"{k} {v}" for k, v in here.items())
        ours = ", ".join(f"{k} {v}" for k, v in wanted.items())
        return {"problem": f"the Dask worker on {host} has {theirs}; this run has {ours}: install the same"}
    directory = Path(job["directory"])
    if not directory.is_dir():
        return {
            "problem": f"the Dask worker on {host} cannot see the folder {directory}: every worker must"
            " reach the data at the same path (a shared folder)"
        }
    with _worker_lock:
        _prepare_worker()
        _announce_start(key)
        return run_serialised(job)


def _prepare_worker() -> None:
    global _worker_ready
    if not _worker_ready:
        import os

        import matplotlib

        os.environ.setdefault("MPLBACKEND", "Agg")
        matplotlib.use("Agg")  # no display, and analyses run outside the main thread
        _worker_ready = True


def _announce_start(key: str) -> None:
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:  # not in a Dask worker (called directly)
        return
    worker.log_event(STARTED_TOPIC, key)
