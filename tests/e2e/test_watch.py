"""Watch mode: `python -m flows.watch` in a subprocess, fed while it runs, against the real Prefect
server; the ledger is read (read-only) to see when each result is recorded."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from linac_qa.records.outputs import is_temporary
from linac_qa.testing import synthetic, synthetic_ct
from linac_qa.testing.faults import stall_mark
from tests.conftest import ROOT, input_checksums

SETTLE, POLL = 2.0, 3.0


# --------------------------------------------------------------------------- the running watch
class Watch:
    def __init__(self, directory: Path, config: Path, api: str, env: dict[str, str] | None = None):
        self.directory = directory
        self.log = directory.parent / f"watch-{time.monotonic_ns()}.log"
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flows.watch", str(directory), "--config", str(config)],
            cwd=ROOT,
            env={
                **os.environ,
                "PREFECT_API_URL": api,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                **(env or {}),
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a process group of its own, as a terminal's job is
        )
        self.seen: dict[str, float] = {}  # first file of a result -> when the test saw it recorded
        wait_for(lambda: b"Ctrl-C stops" in self.log.read_bytes(), 90, self)

    def results(self) -> list[dict[str, Any]]:
        ledger = self.directory / ".linac-qa" / "ledger.sqlite"
        if not ledger.exists():
            return []
        db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=10)
        try:
            rows = db.execute("SELECT files, status, reason, analysis FROM results ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # the schema is being created
            return []
        finally:
            db.close()
        found = [{"files": json.loads(f), "status": s, "reason": r, "analysis": a} for f, s, r, a in rows]
        now = time.time()  # the wall clock: the runs' summaries are stamped in it
        for r in found:
            self.seen.setdefault(r["files"][0], now)
        return found

    def workers(self) -> list[psutil.Process]:
        return [p for p in psutil.Process(self.proc.pid).children() if "spawn_main" in " ".join(p.cmdline())]

    def stop(self, timeout: float = 120) -> int:
        """Ctrl-C as a terminal sends it: to every process of the group, the workers included."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._log.close()


def wait_for(condition: Callable[[], Any], timeout: float, watch: Watch) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if watch.proc.poll() is not None:
            raise AssertionError(
                f"the watch exited ({watch.proc.returncode}):\n{watch.log.read_text()[-3000:]}"
            )
        time.sleep(0.2)
    raise AssertionError(f"timed out; the watch's log ends:\n{watch.log.read_text()[-3000:]}")


@pytest.fixture
def watched(tmp_path: Path, prefect_api: str) -> Iterator[Callable[..., Watch]]:
    started: list[Watch] = []

    def start(config: str, env: dict[str, str] | None = None) -> Watch:
        cfg = tmp_path / "watch.yml"
        cfg.write_text(config, encoding="utf-8")
        (tmp_path / "qa").mkdir(exist_ok=True)
        watch = Watch(tmp_path / "qa", cfg, prefect_api, env)
        started.append(watch)
        return watch

    yield start
    for watch in started:
        watch.kill()


def leftovers(root: Path) -> list[str]:
    """Temporaries, and output sets that are not whole (a `.json` is renamed into place last)."""
    found = [p.name for p in root.rglob("*") if is_temporary(p.name)]
    for document in root.rglob("*_analysis.json"):
        json.loads(document.read_text())
        found += [
            f"{sibling} missing"
            for ext in (".pdf", ".txt")
            if not (sibling := document.with_name(document.name.removesuffix(".json") + ext)).exists()
        ]
    return found


@pytest.mark.e2e
def test_files_from_a_source_are_copied_and_analysed_once_and_promptly(
    tmp_path: Path, watched: Callable[..., Watch]
) -> None:
    source = tmp_path / "EPID"
    source.mkdir()
    watch = watched(f"general:\n  sources: [{source}]\n  settle-seconds: {SETTLE}\n  poll-seconds: {POLL}\n")
    staging = tmp_path / "staging"
    pf = synthetic.picket_fence(staging / "RI.QA.PF_TrueBeam1_A.dcm")
    star = synthetic.starshot(staging / "RI.QA.Starshot_TrueBeam1_A.dcm")
    complete_at: dict[str, float] = {}
    for image in (pf, star):  # arriving one after the other, as an EPID export does
        shutil.copy(image, source / image.name)
        complete_at[f"EPID/{image.name}"] = time.time()
        time.sleep(1.0)
    # Written slowly, straight into the watched folder: analysed once complete, and only once.
    slow = synthetic.starshot(staging / "RI.QA.Starshot_TrueBeam1_slow.dcm", seed=3).read_bytes()
    with (watch.directory / "RI.QA.Starshot_TrueBeam1_slow.dcm").open("wb") as out:
        for i in range(0, len(slow), len(slow) // 8 + 1):
            out.write(slow[i : i + len(slow) // 8 + 1])
            out.flush()
            time.sleep(0.6)
    complete_at["RI.QA.Starshot_TrueBeam1_slow.dcm"] = time.time()
    source_before = input_checksums(source)

    results = wait_for(lambda: len(watch.results()) >= 3 and watch.results(), 180, watch)
    time.sleep(2 * POLL + 1)  # nothing more comes: each file is analysed once
    results = watch.results()
    assert watch.stop() == 0
    by_file = {r["files"][0]: r for r in results}
    assert sorted(by_file) == sorted(complete_at), results
    assert len(results) == 3
    assert all(r["status"] == "passed" for r in results), results
    runs = [json.loads(summary) for summary in _run_summaries(watch.directory)]
    for rel, done in complete_at.items():
        latency = watch.seen[rel] - done
        # Promptly: besides the batches that ran while it waited (its own included, whatever the
        # machine's load makes them take), a file waits no more than the settle time and two polls.
        batches = busy_seconds(runs, rel, since=done + SETTLE)
        allowed = SETTLE + 2 * POLL + batches + 1.0  # +1 s: the test polls the ledger
        print(f"{rel}: recorded {latency:.1f} s after it was complete; allowed {allowed:.1f} s")
        assert latency <= allowed, (
            f"{rel}: recorded {latency:.1f} s after it was complete (allowed {allowed:.1f} s)"
        )
    assert input_checksums(source) == source_before
    assert leftovers(watch.directory) == []


def busy_seconds(runs: list[dict[str, Any]], rel: str, since: float) -> float:
    """How long batches ran between `since` and the end of the batch that recorded `rel`."""
    [own] = [run for run in runs if any(r["files"][0] == rel for r in run["results"])]
    until = _stamp(own["finished"])
    return sum(
        max(0.0, min(_stamp(run["finished"]), until) - max(_stamp(run["started"]), since)) for run in runs
    )


def _stamp(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


@pytest.mark.e2e
def test_a_ct_series_dropped_slice_by_slice_is_one_cbct_result(
    tmp_path: Path, watched: Callable[..., Watch]
) -> None:
    watch = watched(f"general:\n  settle-seconds: {SETTLE}\n  poll-seconds: {POLL}\n")
    slices = synthetic_ct.catphan504_series(tmp_path / "scan", synthetic_ct.CatPhanScan(beyond_phantom=21))
    assert len(slices) == 60
    target = watch.directory / "CBCT_CatPhan504"
    target.mkdir()
    for path in slices:  # the console sends a slice every few hundred milliseconds
        shutil.copy(path, target / path.name)
        time.sleep(0.15)
    wait_for(watch.results, 240, watch)
    time.sleep(2 * POLL + SETTLE)
    results = watch.results()
    assert watch.stop() == 0
    assert len(results) == 1, [(len(r["files"]), r["status"]) for r in results]
    assert results[0]["analysis"] == "cbct"
    assert len(results[0]["files"]) == 60
    assert results[0]["status"] == "passed", results[0]["reason"]


@pytest.mark.e2e
def test_a_worker_killed_mid_analysis_is_an_error_and_the_watch_goes_on(
    tmp_path: Path, watched: Callable[..., Watch]
) -> None:
    # The fault: the analysis of this one acquisition hangs, so that the test can kill its worker.
    watch = watched(
        f"general:\n  settle-seconds: {SETTLE}\n  poll-seconds: {POLL}\n  workers: 1\n",
        env={"LINAC_QA_STALL_ON": "stuck"},
    )
    synthetic.starshot(watch.directory / "RI.QA.Starshot_stuck.dcm")
    # Its one worker is inside the stalled analysis (not still starting: that is no analysis death).
    mark = stall_mark("RI.QA.Starshot_stuck.dcm").encode()
    wait_for(lambda: mark in watch.log.read_bytes(), 180, watch)
    (worker,) = watch.workers()
    worker.send_signal(signal.SIGKILL)
    error = wait_for(lambda: watch.results(), 60, watch)[0]
    assert error["status"] == "error"
    assert "worker process died" in error["reason"]
    synthetic.starshot(watch.directory / "RI.QA.Starshot_next.dcm")
    results = wait_for(lambda: len(watch.results()) >= 2 and watch.results(), 120, watch)
    assert results[1]["files"] == ["RI.QA.Starshot_next.dcm"]
    assert results[1]["status"] == "passed"
    assert watch.stop() == 0


@pytest.mark.e2e
def test_ctrl_c_leaves_whole_outputs_only_and_a_restart_analyses_nothing_twice(
    tmp_path: Path, watched: Callable[..., Watch]
) -> None:
    config = f"general:\n  settle-seconds: 0\n  poll-seconds: {POLL}\n  workers: 1\n"
    names = [f"RI.QA.PF_TrueBeam1_{c}.dcm" for c in "ABCDEF"]
    first = watched(config)
    staging = tmp_path / "staging"
    for i, name in enumerate(names):
        synthetic.picket_fence(staging / name, seed=i)
    for name in names:
        shutil.copy(staging / name, first.directory / name)
    wait_for(first.results, 180, first)
    assert first.stop() == 0
    analysed_first = {r["files"][0] for r in first.results()}
    assert 1 <= len(analysed_first) < len(names), "the stop came too late to test anything"
    assert leftovers(first.directory) == []
    summary = [json.loads(s) for s in _run_summaries(first.directory)][-1]
    assert summary["skipped"]["stopped"] >= 1

    second = watched(config)
    results = wait_for(lambda: len(second.results()) >= len(names) and second.results(), 240, second)
    time.sleep(2 * POLL)
    results = second.results()
    assert second.stop() == 0
    assert sorted(r["files"][0] for r in results) == sorted(names)  # each once
    assert not (second.directory / ".linac-qa" / "history").exists()  # nothing was re-analysed
    assert leftovers(second.directory) == []


def _run_summaries(directory: Path) -> list[str]:
    db = sqlite3.connect(f"file:{directory / '.linac-qa' / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        return [
            s for (s,) in db.execute("SELECT summary FROM runs WHERE summary IS NOT NULL ORDER BY started")
        ]
    finally:
        db.close()
