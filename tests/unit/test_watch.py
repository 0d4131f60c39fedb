"""When a watch starts a batch: the trigger alone. The running watch: tests/e2e/test_watch.py."""

from __future__ import annotations

from linac_qa.watching import BUSY_FOLDER_LIMIT, RECHECK_WAITING_SECONDS, BatchTrigger, Pending


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
