"""The optional Dask path (issue 7): analyses sent to an existing Dask cluster, here a `LocalCluster`
of spawned worker processes on 127.0.0.1.

The pool's own behaviour (errors, time limit, cancelling, an unreachable scheduler, a worker without
linac_qa) is tested directly, without Prefect; the acceptance test, the command line with and without
the cluster, is tests/e2e/test_dask.py."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import wait
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("distributed")

from distributed import LocalCluster

from linac_qa.execution import dask_pool
from linac_qa.execution.dask_pool import DaskPool, DaskUnavailable
from tests.conftest import free_port
from tests.jobs import Recorder, starshot_jobs

# --------------------------------------------------------------------------- the pool itself


def test_an_unreachable_scheduler_fails_fast_naming_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dask_pool, "CONNECT_TIMEOUT_SECONDS", 2.0)
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(DaskUnavailable) as err:
        DaskPool(address, 60)
    assert time.monotonic() - started < 10
    assert f"cannot reach the Dask scheduler at {address}" in str(err.value)
    assert "dask-address" in str(err.value)


def test_an_analysis_on_the_cluster_and_a_folder_the_workers_cannot_see(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    [job] = starshot_jobs(tmp_path)
    unseen = job.model_copy(update={"directory": str(tmp_path / "not-mounted")})
    done = Recorder()
    with DaskPool(cluster.scheduler_address, 120) as pool:
        futures = [pool.submit(job, done), pool.submit(unseen, done)]
        good, bad = (f.result(timeout=120) for f in futures)
    assert good.result.status == "passed", good.result.reason
    assert good.hashes and all((Path(job.directory) / o).exists() for o in good.result.outputs)
    assert bad.result.status == "error"
    assert f"cannot see the folder {tmp_path / 'not-mounted'}" in bad.result.reason
    assert "same path" in bad.result.reason
    recorded = {j.directory: o for j, o, _ in done.calls}
    assert len(done.calls) == 2 and recorded == {job.directory: good, unseen.directory: bad}


def test_the_time_limit_makes_an_error_of_that_job_alone(cluster: LocalCluster, tmp_path: Path) -> None:
    [job] = starshot_jobs(tmp_path)
    done = Recorder()
    with DaskPool(cluster.scheduler_address, 0.3) as pool:
        outcome = pool.submit(job, done).result(timeout=60)
    assert outcome.result.status == "error"
    assert outcome.result.reason == "analysis stopped after the time limit of 0.3 s"
    assert [o for _, o, _ in done.calls] == [outcome]


def test_cancel_pending_cancels_only_what_has_not_started(cluster: LocalCluster, tmp_path: Path) -> None:
    jobs = starshot_jobs(tmp_path, count=6)
    done = Recorder()
    with DaskPool(cluster.scheduler_address, 120) as pool:
        promises = [pool.submit(job, done) for job in jobs]
        deadline = time.monotonic() + 60
        while not any(e.started for e in list(pool._entries.values())) and time.monotonic() < deadline:
            time.sleep(0.05)  # until a worker has begun one
        cancelled = pool.cancel_pending()
        assert not wait(promises, timeout=120).not_done
    assert 3 <= cancelled <= 5  # two workers, one thread each: most had not started, one had
    assert sum(p.cancelled() for p in promises) == cancelled
    assert len(done.calls) == len(jobs) - cancelled  # on_done never ran for a cancelled job
    assert all(p.result().result.status == "passed" for p in promises if not p.cancelled())


def test_a_worker_without_linac_qa_is_an_error_not_a_dead_worker(tmp_path: Path) -> None:
    """The task is shipped by value: a worker that cannot import linac_qa runs it and says so (a task
    pickled by reference would fail while being unpickled, which kills the worker)."""
    [job] = starshot_jobs(tmp_path)
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'linac_qa':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from distributed.cli.dask_worker import main\n"
        "sys.argv = ['dask-worker', *sys.argv[1:]]\n"
        "main()\n"
    )
    with LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address=":0") as lc:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-c",
                blocker,
                lc.scheduler_address,
                "--no-nanny",
                "--nthreads",
                "1",
                "--no-dashboard",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            with DaskPool(lc.scheduler_address, 60) as pool:
                pool._client.wait_for_workers(1, timeout=30)
                outcome = pool.submit(job, Recorder()).result(timeout=60)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    assert outcome.result.status == "error"
    assert "cannot import linac_qa" in outcome.result.reason
    assert "install linac-qa-flows" in outcome.result.reason


def test_a_cluster_without_workers_makes_errors_instead_of_a_run_that_hangs(tmp_path: Path) -> None:
    [job] = starshot_jobs(tmp_path)
    done = Recorder()
    with (
        LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address=":0") as lc,
        DaskPool(lc.scheduler_address, 0.5, stall_margin=0.5) as pool,
    ):
        outcome = pool.submit(job, done).result(timeout=30)
    assert outcome.result.status == "error"
    assert outcome.result.reason.startswith(f"no Dask worker at {lc.scheduler_address} started this analysis")
    assert [o for _, o, _ in done.calls] == [outcome]


def test_a_killed_worker_reads_as_such() -> None:
    from distributed import KilledWorker

    exc = KilledWorker("linac-qa-starshot-1", SimpleNamespace(address="tcp://10.0.0.7:40000"), 3)
    reason = dask_pool._reason(exc)
    assert reason.startswith("Dask workers died during the analysis (4 attempts, the last on tcp://10.0.0.7")
