"""`python -m flows.review` (issue 17): list, approve, reject, comment, bulk approval by date; the
audit rows that no command changes or removes. Results are written straight into the trail."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from flows import review as review_cli
from linac_qa.review import queue
from linac_qa.review.trail import Decision, Review, Trail
from tests.unit.test_review_queue import T0, entry


def seeded(directory: Path) -> list[str]:
    """Seven tolerance-level results on March 2 to 8, 2024, one clean result on March 9."""
    trail = Trail(directory)
    try:
        for n in range(1, 8):
            queue.record(trail, entry(n, level="tolerance"), T0)
        queue.record(trail, entry(8), T0)
    finally:
        trail.close()
    return [entry(n).result_id for n in range(1, 9)]


def reviews(directory: Path) -> list[Review]:
    trail = Trail(directory)
    try:
        return trail.reviews()
    finally:
        trail.close()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = review_cli.main(list(args))
    except SystemExit as ended:  # argparse's usage errors
        code = int(ended.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_approve_reject_comment_and_bulk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = seeded(tmp_path)
    d = str(tmp_path)
    code, out, err = run(capsys, d, "list")
    assert code == 0 and len(out.splitlines()) == 8 and "7 pending review" in err
    first = out.splitlines()[0]
    short = first.split()[0]
    assert short == queue.short_id(ids[0]) and "pending" in first and "needs review: tolerance level" in first
    assert "auto: clean: passed" in out.splitlines()[-1]
    code, out, _ = run(capsys, d, "list", "--pending", "--since", "2024-03-08")
    assert code == 0 and len(out.splitlines()) == 1  # March 8 only: the 9th is auto-approved

    assert run(capsys, d, "approve", short)[0] == 2  # no --by: refused
    assert run(capsys, d, "reject", short, "--by", "AP")[0] == 2  # no --comment: refused
    code, _, err = run(capsys, d, "approve", short, "nosuchid", "--by", "AP")
    assert code == 2 and "'nosuchid' is no result" in err
    assert len(reviews(tmp_path)) == 1  # nothing recorded by a refused command: only auto's row

    assert run(capsys, d, "reject", short[:5], "--by", "AP", "--comment", "phantom misaligned")[0] == 0
    assert run(capsys, d, "comment", ids[1], "--by", "AP", "--comment", "watch it")[0] == 0
    code, out, _ = run(capsys, d, "approve", "--pending", "--until", "2024-03-05", "--by", "A. Physicist")
    assert code == 0 and "3 result(s): approve by A. Physicist" in out  # March 3 to 5; the 2nd rejected
    code, out, _ = run(capsys, d, "list")
    states = [line.split()[1] for line in out.splitlines()]
    assert states == [
        "rejected",
        "approved",
        "approved",
        "approved",
        "pending",
        "pending",
        "pending",
        "approved",
    ]
    assert "reject by AP" in out.splitlines()[0] and "phantom misaligned" in out.splitlines()[0]
    assert [(r.decision, r.reviewer) for r in reviews(tmp_path)][1:] == [
        (Decision.REJECT, "AP"),
        (Decision.COMMENT, "AP"),
        *[(Decision.APPROVE, "A. Physicist")] * 3,
    ]


def test_no_command_changes_or_removes_an_audit_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = seeded(tmp_path)
    d, short = str(tmp_path), queue.short_id(ids[0])
    commands = [
        ["approve", short, "--by", "AP"],
        ["reject", short, "--by", "AP", "--comment", "no"],
        ["comment", short, "--by", "BB", "--comment", "hm"],
        ["approve", "--pending", "--until", "2024-03-31", "--by", "CC"],
        ["approve", short, "--by", "auto"],  # refused: auto-review's name
        ["list"],
    ]
    before = reviews(tmp_path)
    for args in commands:
        run(capsys, d, *args)
        after = reviews(tmp_path)
        assert after[: len(before)] == before  # appended, never changed
        before = after
    assert [r.reviewer for r in before] == [
        "auto",
        "AP",
        "AP",
        "BB",
        *["CC"] * 6,
    ]  # the rejected one is decided


def test_dates_are_whole_local_days() -> None:
    end = queue.time_bound("2024-03-05", end=True)
    start = queue.time_bound("2024-03-05", end=False)
    assert dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start) == dt.timedelta(
        days=1, microseconds=-1
    )
    with pytest.raises(ValueError, match="not a date"):
        queue.time_bound("March", end=False)
