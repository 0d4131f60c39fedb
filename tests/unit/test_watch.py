"""When a watch starts a batch: the trigger alone. The running watch: tests/e2e/test_watch.py."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from linac_qa.config import Settings
from linac_qa.execution.pool_base import Stop
from linac_qa.run import UsageError
from linac_qa.watching import (
    BUSY_FOLDER_LIMIT,
    RECHECK_WAITING_SECONDS,
    BatchTrigger,
    Pending,
    wait_for_directory,
)


def pending(*paths: str, busy: tuple[str, ...] = ()) -> Pending:
    return Pending(frozenset((p, 1, 1) for p in paths), frozenset(busy))


def test_a_batch_waits_until_nothing_new_in_its_folder_is_still_being_written() -> None:
    trigger = BatchTrigger(settle_seconds=30)
    assert not trigger.due(pending(), 0)
    assert not trigger.due(pending("CT/1.dcm", busy=("CT",)), 0)  # a series arriving
    assert trigger.due(pending("CT/1.dcm", "CT/2.dcm"), 40)
    # Another folder's settled image does not wait for the series.
    assert trigger.due(pending("CT/1.dcm", "EPID/PF.dcm", busy=("CT",)), 41)


def test_a_folder_that_never_stops_changing_cannot_hold_the_queue_forever() -> None:
    trigger = BatchTrigger(settle_seconds=30)
    assert not trigger.due(pending("PF.dcm", busy=(".",)), 0)
    assert not trigger.due(pending("PF.dcm", busy=(".",)), BUSY_FOLDER_LIMIT * 30 - 1)
    assert trigger.due(pending("PF.dcm", busy=(".",)), BUSY_FOLDER_LIMIT * 30)


def test_what_a_batch_left_waiting_does_not_start_batches_until_something_changes() -> None:
    trigger = BatchTrigger(settle_seconds=30)
    half = pending("logs/A_dynalog.dlg")
    assert trigger.due(half, 0)
    trigger.started(half, 0)
    assert not trigger.due(half, 60)
    assert trigger.due(pending("logs/A_dynalog.dlg", "logs/B_dynalog.dlg"), 90)
    assert trigger.due(half, RECHECK_WAITING_SECONDS)  # its group may have timed out by now


def test_a_watch_waits_for_a_directory_that_is_mounted_late_and_says_why(tmp_path: Path) -> None:
    share = tmp_path / "share"
    said: list[str] = []
    later = threading.Timer(0.5, share.mkdir)
    later.start()
    found = wait_for_directory(str(share), Settings(), Stop(), said.append, retry=(0.1, 0.2))
    assert found == share.resolve()
    assert said and all("directory not found" in s and "looking again in" in s for s in said)
    assert "0.1 s" in said[0] and "0.2 s" in said[-1]  # backing off, up to the longest wait


def test_a_watch_stopped_while_it_waits_for_its_directory_ends(tmp_path: Path) -> None:
    stop = Stop()
    threading.Timer(0.3, stop.request).start()
    assert wait_for_directory(str(tmp_path / "never"), Settings(), stop, lambda _: None, retry=(5, 5)) is None


def test_a_directory_that_is_a_file_is_not_waited_for(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match=r"not a folder|is a file"):
        wait_for_directory(str(tmp_path / "file"), Settings(), Stop(), lambda _: None)
