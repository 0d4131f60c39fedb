"""The review-qa flow's work, called as a function (its run on a real server, from the form the UI
shows, is tests/e2e/test_deployments.py), and the pending-review artifact's text (issue 17)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from prefect.logging import disable_run_logger

from flows import review as review_cli
from flows.review_flow import review_qa
from linac_qa.review import queue
from linac_qa.review.text import pending_markdown
from linac_qa.review.trail import Decision, Trail
from tests.unit.test_review_cli import reviews, seeded
from tests.unit.test_review_queue import entry


def test_a_cli_review_and_a_flow_review_of_one_result_both_stay_in_order(tmp_path: Path) -> None:
    ids = seeded(tmp_path)  # tolerance-level results acquired March 2 to 8, 2024
    short = queue.short_id(ids[0])
    assert review_cli.main([str(tmp_path), "comment", short, "--by", "CLI", "--comment", "bank B?"]) == 0
    with disable_run_logger():
        state = review_qa.fn(
            reviewer="UI", decision="approve", until=dt.date(2024, 3, 4), directory=str(tmp_path)
        )
        assert state.name == "Completed: 3 approved"  # March 2 to 4, the commented one included
        named = review_qa.fn(
            reviewer="UI", decision="comment", comment="seen", results=(short,), directory=str(tmp_path)
        )
        assert named.name == "Completed: 1 commented"
        with pytest.raises(queue.ReviewError, match="reject needs a comment"):
            review_qa.fn(reviewer="UI", decision="reject", directory=str(tmp_path))
    mine = [(r.decision, r.reviewer) for r in reviews(tmp_path) if r.result_id == ids[0]]
    assert mine == [(Decision.COMMENT, "CLI"), (Decision.APPROVE, "UI"), (Decision.COMMENT, "UI")]


def test_the_form_s_values_validate_as_a_deployment_run_sends_them() -> None:
    sent = {"reviewer": "AP", "decision": "reject", "results": ["3f9a1c2"], "until": "2024-03-31"}
    checked = review_qa.validate_parameters(sent)
    assert checked["until"] == dt.date(2024, 3, 31) and list(checked["results"]) == ["3f9a1c2"]
    with pytest.raises(Exception, match="decision"):
        review_qa.validate_parameters({**sent, "decision": "sign"})


def test_the_pending_artifact_lists_what_waits_and_links_to_the_review_deployment(tmp_path: Path) -> None:
    trail = Trail(tmp_path)
    try:
        queue.record(
            trail, entry(1, status="failed", level="action", reason="action level: x 3"), entry_time()
        )
        queue.record(trail, entry(2), entry_time())
        queue.record(trail, entry(3, result_id="later.json"), entry_time())
        found = queue.items(trail)
    finally:
        trail.close()
    link = "http://127.0.0.1:4200/deployments/deployment/abc"
    text = pending_markdown(found, "TrueBeam1", link)
    assert text.startswith("# TrueBeam1: 1 result pending review")
    row = next(line for line in text.splitlines() if line.startswith(f"| {found[0].short} |"))
    assert "failed (action level); repeated: passed on 2024-03-03" in row and "action level: x 3" in row
    assert f"[TrueBeam1 review]({link})" in text
    assert "0 results pending review" in pending_markdown(found[1:], "TrueBeam1")


def entry_time() -> dt.datetime:
    return dt.datetime(2024, 4, 1, tzinfo=dt.UTC)
