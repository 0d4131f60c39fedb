"""The review queue (issue 17, acceptance 1): auto-review of clean results, a comment that blocks it,
approve, reject and bulk approval by date, supersede; the trail filled by a run and by the record's
back-fill. Results are written straight into the trail."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from linac_qa.config import load_settings
from linac_qa.history.backfill import rebuild
from linac_qa.history.store import to_text
from linac_qa.model import AnalysisResult, Status
from linac_qa.records.ledger import STATE_DIR, Ledger
from linac_qa.review import queue
from linac_qa.review.queue import AUTO, ReviewError, State
from linac_qa.review.trail import TRAIL_FILE, Decision, Entry, Trail
from linac_qa.run import Run
from linac_qa.testing.synthetic_history import result_on, write_outputs

T0 = dt.datetime(2024, 3, 1, 7, tzinfo=dt.UTC)


def entry(n: int, **changes: object) -> Entry:
    """A clean picket fence result acquired on day `n` of March 2024."""
    base = Entry(
        result_id=f"picketfence/PF_{n:02d}_analysis.json", machine="TrueBeam1", analysis="picketfence",
        variant="", acquired=to_text(T0 + dt.timedelta(days=n)), status="passed", level="ok", drift=None,
        judged=True, reason="", report=f"picketfence/PF_{n:02d}_analysis.pdf", sources={"PF.dcm": "ab" * 32},
        recorded=to_text(T0 + dt.timedelta(days=n, hours=1)),
    )  # fmt: skip
    return Entry(**{**base.__dict__, **changes})


@pytest.fixture
def trail(tmp_path: Path) -> Iterator[Trail]:
    t = Trail(tmp_path)
    yield t
    t.close()


def state(trail: Trail, rid: str) -> queue.Item:
    return next(i for i in queue.items(trail) if i.entry.result_id == rid)


def test_clean_results_are_auto_reviewed_when_recorded_and_the_rest_wait(trail: Trail) -> None:
    clean, unlevelled = entry(1), entry(2, level=None)
    waiting = {
        "tolerance level": entry(3, level="tolerance"),
        "failed (action level)": entry(4, status="failed", level="action"),
        "error": entry(5, status="error", level=None, judged=False, acquired=None),
        "drift": entry(6, drift="drift: x_mm 0.4: 2 of 3 beyond 2 sigma"),
        "not judged": entry(7, judged=False, level=None),
    }
    now = T0 + dt.timedelta(days=9)
    for e in [clean, unlevelled, *waiting.values()]:
        queue.record(trail, e, now)
    auto = trail.reviews()
    assert [(r.result_id, r.reviewer, r.decision) for r in auto] == [
        (clean.result_id, AUTO, Decision.APPROVE),
        (unlevelled.result_id, AUTO, Decision.APPROVE),
    ]
    assert auto[0].at == to_text(now) and auto[0].rule == "clean: passed, every judged metric ok, no drift"
    assert "no level applies" in (auto[1].rule or "")
    assert state(trail, clean.result_id).state is State.APPROVED and state(trail, clean.result_id).auto
    for why, e in waiting.items():
        item = state(trail, e.result_id)
        assert (item.state, item.needs) == (State.PENDING, why)
    # Recorded again (a re-analysis with --force): the row is replaced, auto-review is not repeated.
    queue.record(trail, clean, now + dt.timedelta(days=1))
    assert len(trail.reviews()) == 2


def test_a_comment_takes_a_clean_result_out_of_auto_review(trail: Trail) -> None:
    queue.record(trail, entry(1), T0)
    queue.decide(trail, [entry(1).result_id], Decision.COMMENT, "A. Physicist", "MLC bank B looked odd", T0)
    item = state(trail, entry(1).result_id)
    assert (item.state, item.auto) == (State.PENDING, False)  # the auto row stays; a person must sign
    assert [r.reviewer for r in item.reviews] == [AUTO, "A. Physicist"]
    queue.record(trail, entry(1), T0)  # recorded again: a commented result is never auto-reviewed again
    assert len(trail.reviews()) == 2
    queue.decide(trail, [entry(1).result_id], Decision.APPROVE, "A. Physicist", "", T0)
    assert state(trail, entry(1).result_id).state is State.APPROVED
    # A comment given before the result is recorded clean blocks auto-review as well.
    trail.add(entry(2))
    queue.decide(trail, [entry(2).result_id], Decision.COMMENT, "B", "watch this one", T0)
    assert queue.record(trail, entry(2), T0) is None
    assert state(trail, entry(2).result_id).state is State.PENDING


def test_approve_reject_and_bulk_approval_up_to_a_date(trail: Trail) -> None:
    for n in range(1, 8):
        queue.record(trail, entry(n, level="tolerance"), T0)
    ids = [entry(n).result_id for n in range(1, 8)]
    queue.decide(trail, ids[:1], Decision.REJECT, "AP", "phantom misaligned", T0)
    assert state(trail, ids[0]).state is State.REJECTED
    queue.decide(trail, ids[:1], Decision.APPROVE, "AP", "", T0)  # the latest person's decision wins
    assert state(trail, ids[0]).state is State.APPROVED
    with pytest.raises(ReviewError, match="reject needs a comment"):
        queue.decide(trail, ids[1:2], Decision.REJECT, "AP", " ", T0)
    with pytest.raises(ReviewError, match="auto-review's name"):
        queue.decide(trail, ids[1:2], Decision.APPROVE, "Auto", "", T0)
    until = to_text(T0 + dt.timedelta(days=4, hours=23))
    bulk = queue.pending(trail, until=until)
    assert bulk == ids[1:4]  # pending, acquired on days 2 to 4, oldest first
    queue.decide(trail, bulk, Decision.APPROVE, "AP", "", T0)
    assert [i.state for i in queue.items(trail)] == [State.APPROVED] * 4 + [State.PENDING] * 3
    assert len(trail.reviews()) == 5  # every row kept


def test_short_ids_resolve_and_unknown_ones_record_nothing(trail: Trail) -> None:
    queue.record(trail, entry(1, level="tolerance"), T0)
    rid = entry(1).result_id
    short = queue.short_id(rid)
    assert queue.resolve(trail, [short, short[:4], rid]) == [rid]
    with pytest.raises(ReviewError, match="no result"):
        queue.resolve(trail, ["zzzz"])
    with pytest.raises(ReviewError, match="no result"):
        queue.resolve(trail, [short[:3]])  # too short to be typed on purpose


def test_a_passing_repeat_supersedes_a_failure_and_both_remain(trail: Trail) -> None:
    failed = entry(1, status="failed", level="action")
    error = entry(2, status="error", level=None, judged=False)
    other_variant = entry(3, variant="energy=10X")
    unjudged = entry(3, result_id="u.json", judged=False, level=None)
    repeat = entry(4)
    for e in (failed, error, other_variant, unjudged, repeat):
        queue.record(trail, e, T0)
    found = {i.entry.result_id: i for i in queue.items(trail)}
    assert len(found) == 5
    for rid in (failed.result_id, error.result_id):
        assert found[rid].repeated == repeat and found[rid].state is State.PENDING  # still to be signed
    assert found[repeat.result_id].repeated is None and found[repeat.result_id].state is State.APPROVED


def test_audit_rows_refuse_change_even_by_direct_sql(trail: Trail) -> None:
    queue.record(trail, entry(1), T0)
    with pytest.raises(sqlite3.IntegrityError, match="never changed"):
        trail.conn.execute("UPDATE reviews SET reviewer = 'someone else'")
    with pytest.raises(sqlite3.IntegrityError, match="never removed"):
        trail.conn.execute("DELETE FROM reviews")
    assert [r.reviewer for r in trail.reviews()] == [AUTO]


def test_a_run_fills_the_trail_errors_included_and_survives_an_unwritable_one(tmp_path: Path) -> None:
    settings = load_settings(text="general:\n  settle-seconds: 0\n")
    passed = result_on(1, {"x_mm": 0.1}).model_copy(update={"judged": True})
    error = AnalysisResult(analysis="starshot", model=None, files=[], status=Status.ERROR, reason="bad")
    ignored = AnalysisResult(analysis=None, model=None, files=[], status=Status.IGNORED, reason="not QA")
    ledger = Ledger.open(tmp_path)
    try:
        run = Run(tmp_path, settings, ledger)
        for r in (passed, error, ignored):
            run.record(r)
        run.close_history()
        trail = Trail(tmp_path)
        try:
            assert [(i.entry.status, i.state) for i in queue.items(trail)] == [
                ("passed", State.APPROVED),
                ("error", State.PENDING),
            ]
        finally:
            trail.close()
        (tmp_path / STATE_DIR / TRAIL_FILE).unlink()
        (tmp_path / STATE_DIR / TRAIL_FILE).mkdir()  # cannot be opened as a database
        run.add_to_trail(passed, {})
        assert run.warnings and run.warnings[0].startswith("the review trail could not be updated")
    finally:
        ledger.close()


def test_the_record_back_fill_fills_the_trail_and_never_touches_reviews(tmp_path: Path) -> None:
    sources = {"field-analysis/x.dcm": "ab" * 32}
    for i in range(3):
        write_outputs(tmp_path, result_on(i, {"x_mm": 0.1 * i}).model_copy(update={"judged": True}), sources)
    trail = Trail(tmp_path)
    try:
        trail.add(entry(9, level="tolerance"))
        queue.decide(trail, [entry(9).result_id], Decision.APPROVE, "AP", "", T0)
    finally:
        trail.close()
    done = rebuild(tmp_path)
    assert (done.documents, done.entries) == (3, 3)
    trail = Trail(tmp_path)
    try:
        found = queue.items(trail)
        assert len(found) == 4 and all(i.entry.judged for i in found)
        assert [(r.reviewer, r.result_id) for r in trail.reviews()] == [("AP", entry(9).result_id)]
    finally:
        trail.close()
