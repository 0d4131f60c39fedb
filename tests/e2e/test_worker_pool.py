"""The local worker pool on its own (no Prefect): a hung analysis meets its time limit and the next
one still runs; a stop cancels only what has not started."""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.spawn
import os
import subprocess
import sys
import time
from concurrent.futures import CancelledError, wait
from multiprocessing import resource_tracker
from pathlib import Path

import psutil
import pytest

from linac_qa.execution.local_pool import AnalysisPool, WorkersUnavailable
from linac_qa.execution.pool_base import Stop
from linac_qa.execution.pools import Lent
from linac_qa.testing.faults import STALL_ON
from tests.jobs import Recorder, starshot_jobs

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_a_hung_analysis_is_an_error_after_its_time_limit_and_the_next_one_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STALL_ON, "Starshot_0")  # the fault: this acquisition's analysis hangs
    jobs = starshot_jobs(tmp_path, 2)
    done = Recorder()
    # Long enough for the good starshot on a machine kept busy by other work (about 2 s when quiet).
    with AnalysisPool(workers=1, timeout_seconds=15) as pool:
        hung, after = (pool.submit(job, done) for job in jobs)
        stopped, analysed = hung.result(timeout=120), after.result(timeout=120)
    assert stopped.result.status == "error"
    assert stopped.result.reason == "analysis stopped after the time limit of 15 s"
    assert analysed.result.status == "passed", analysed.result.reason
    assert sorted(o.result.status for _, o, _ in done.calls) == ["error", "passed"]


def test_cancelling_the_waiting_jobs_leaves_the_running_one_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STALL_ON, "Starshot_0")
    jobs = starshot_jobs(tmp_path, 3)
    done = Recorder()
    with AnalysisPool(workers=1, timeout_seconds=15) as pool:
        running, *waiting = (pool.submit(job, done) for job in jobs)
        deadline = time.monotonic() + 60
        while not any(f.running() for f in pool._scheduled):  # until the hung one has begun
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.1)
        assert pool.cancel_pending() == 2
        outcome = running.result(timeout=120)
    for future in waiting:
        assert future.cancelled()
        with pytest.raises(CancelledError):
            future.result()
    assert outcome.result.status == "error"  # it ran on, to its time limit
    assert [j.acquisition.name for j, _, _ in done.calls] == ["RI.QA.Starshot_0.dcm"]


def test_workers_that_cannot_start_say_why(tmp_path: Path) -> None:
    jobs = starshot_jobs(tmp_path, 1)
    good = multiprocessing.spawn.get_executable()
    resource_tracker.ensure_running()  # with the good interpreter: only the workers meet the fault
    multiprocessing.set_executable(str(tmp_path / "python-removed-by-an-upgrade"))  # the fault
    try:
        with pytest.raises(WorkersUnavailable) as err, AnalysisPool(workers=1, timeout_seconds=60) as pool:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the first analysis may be queued before the pool fails
                pool.submit(jobs[0], Recorder())
                time.sleep(0.5)
    finally:
        multiprocessing.set_executable(good)
    message = str(err.value)
    assert message.startswith("the analysis worker processes cannot start: "), message
    assert "python-removed-by-an-upgrade" in message and "No such file or directory" in message


def test_a_failing_run_records_nothing_it_did_not_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop (SIGTERM: Prefect raises in the flow) or any exception in the run leaves the pool's
    block: the analysis in progress is ended and the waiting ones never start. None of them is an
    outcome (no `error: BrokenProcessPool`): their files stay unrecorded for the next run."""
    monkeypatch.setenv(STALL_ON, "Starshot_0")
    jobs = starshot_jobs(tmp_path, 3)
    done = Recorder()
    futures = []
    with pytest.raises(KeyboardInterrupt), AnalysisPool(workers=1, timeout_seconds=60) as pool:
        futures = [pool.submit(job, done) for job in jobs]
        deadline = time.monotonic() + 60
        while not any(f.running() for f in pool._scheduled):  # the stalled analysis has begun
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.1)
        raise KeyboardInterrupt  # what a stop raises in the flow
    # pebble fails the tasks it dropped from a thread of its own, later: wait for every one.
    finished, _ = wait(futures, timeout=60)
    assert len(finished) == len(futures)
    assert [o.result.reason for _, o, _ in done.calls] == []  # not `error: BrokenProcessPool`
    assert all(f.cancelled() for f in futures)


def test_a_worker_killed_before_it_began_leaves_the_analyses_to_a_fresh_pool(tmp_path: Path) -> None:
    """pebble fails every analysis with BrokenProcessPool ("All workers expired") when a worker dies
    while none runs (the OOM killer; here, a kill while it imports pylinac), and takes no more: those
    never began, so they are analysed on a fresh pool rather than recorded as errors."""
    jobs = starshot_jobs(tmp_path, 2)
    done = Recorder()
    before = {p.pid for p in psutil.Process().children()}
    with AnalysisPool(workers=1, timeout_seconds=120) as pool:
        futures = [pool.submit(job, done) for job in jobs]
        [worker] = _workers_of_this_process(before)
        worker.kill()  # still starting: it has taken no analysis yet
        outcomes = [f.result(timeout=300) for f in futures]
    assert [o.result.status for o in outcomes] == ["passed", "passed"], [o.result.reason for o in outcomes]
    assert sorted(o.result.status for _, o, _ in done.calls) == ["passed", "passed"]


def _workers_of_this_process(before: set[int]) -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process().children()
        if p.pid not in before and "spawn_main" in " ".join(p.cmdline())
    ]


def test_workers_start_only_when_there_is_something_to_analyse_and_no_more_than_it_needs() -> None:
    """A worker's start (importing pylinac) costs seconds of CPU: a run that finds nothing new
    starts none, and one with a single new file starts one."""
    before = {p.pid for p in psutil.Process().children()}
    with AnalysisPool(workers=2, timeout_seconds=60) as pool:
        time.sleep(1)
        assert _workers_of_this_process(before) == []
        pool.warm(1)
        deadline = time.monotonic() + 60
        while not _workers_of_this_process(before) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)
        assert len(_workers_of_this_process(before)) == 1
        pool.warm(2)  # already warm: the pool keeps its size
        time.sleep(1)
        assert len(_workers_of_this_process(before)) == 1


def test_a_pool_made_with_a_stop_that_is_set_starts_nothing(tmp_path: Path) -> None:
    stop = Stop()
    [job] = starshot_jobs(tmp_path)
    done = Recorder()
    with AnalysisPool(workers=1, timeout_seconds=60, stop=stop) as pool:
        assert stop.request() == 0  # nothing was waiting
        promise = pool.submit(job, done)
        lent = Lent(pool).submit(job, done)
    assert promise.cancelled() and lent.cancelled()
    assert done.calls == []
    assert stop.is_set()


# In a process of its own: once a stop signal has come, every Stop the process makes is born set.
ABANDONED_BY_THE_LISTENER = """
import json, sys, time
from pathlib import Path
from linac_qa.config import load_settings
from linac_qa.execution.pool_base import Stop, abandon_all
from linac_qa.execution.pools import make_pool
from tests.jobs import Recorder, starshot_jobs

jobs = starshot_jobs(Path(sys.argv[1]), 2)
done = Recorder()
with make_pool(load_settings(text="general: {workers: 1}").general, Stop()) as pool:
    futures = [pool.submit(job, done) for job in jobs]
    deadline = time.monotonic() + 60
    while not any(f.running() for f in pool._scheduled):  # the stalled analysis has begun
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.1)
    abandon_all()  # what the stop-signal listener calls: it holds neither the pool nor its Stop
    late = pool.submit(jobs[0], done)
print(json.dumps({
    "cancelled": [f.cancelled() for f in futures],
    "late": late.cancelled(),
    "recorded": len(done.calls),
    "new_stop_set": Stop().is_set(),
}))
"""


def test_a_stop_signal_abandons_the_pool_of_a_stop_that_only_the_run_holds(tmp_path: Path) -> None:
    """The stop-signal listener (flows/stop_signals.py) reaches every Stop of the process, so the
    run's pool is abandoned (the analysis in progress ended, the waiting one never started, neither
    recorded), and a pool made after the signal starts nothing either."""
    proc = subprocess.run(
        [sys.executable, "-c", ABANDONED_BY_THE_LISTENER, str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, STALL_ON: "Starshot_0", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == {
        "cancelled": [True, True],
        "late": True,
        "recorded": 0,
        "new_stop_set": True,
    }
