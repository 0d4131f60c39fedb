"""Reading a ledger from outside a run (the benchmarks watch one while runs write it): every result,
how many runs started and finished, every message; a read-only ledger creates and changes nothing."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from linac_qa.model import AnalysisResult, Status
from linac_qa.notify.outbox import NewMail, Outbox
from linac_qa.records.ledger import FileStamp, Ledger
from linac_qa.records.versions import Provenance

MADE_BY = Provenance("0.1.0", "3.49.0", "abc")


def result(name: str, status: Status) -> AnalysisResult:
    return AnalysisResult(analysis="starshot", model=None, files=[name], status=status, reason=status.value)


def write(path: Path) -> None:
    ledger = Ledger(path)
    try:
        now = dt.datetime.now(dt.UTC)
        ledger.start_run("one", now)
        ledger.record(
            result("a.dcm", Status.PASSED), [FileStamp("a.dcm", 1, 1)], run_id="one", provenance=MADE_BY
        )
        ledger.record(
            result("b.dcm", Status.FAILED), [FileStamp("b.dcm", 1, 1)], run_id="one", provenance=MADE_BY
        )
        ledger.finish_run("one", now, {})
        ledger.start_run("two", now)
        Outbox(ledger).queue("two", [NewMail("digest", "QA", "qa@x.test", ["p@x.test"], b"m", "<1@x>")], [])
    finally:
        ledger.close()


def test_an_observer_reads_results_runs_and_mail(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    write(path)
    before = path.read_bytes()
    observer = Ledger(path, read_only=True)
    try:
        assert [(r.files, r.status) for r in observer.results()] == [
            (["a.dcm"], Status.PASSED),
            (["b.dcm"], Status.FAILED),
        ]
        assert observer.run_counts() == (2, 1)
        assert [(m.subject, m.status) for m in Outbox(observer).all()] == [("QA", "pending")]
        with pytest.raises(sqlite3.OperationalError):
            observer.set_state("key", "value")
    finally:
        observer.close()
    assert path.read_bytes() == before


def test_a_read_only_ledger_is_never_created(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError):
        Ledger(tmp_path / "ledger.sqlite", read_only=True)
    assert not any(tmp_path.iterdir())
