"""`review-qa`: the review queue in the Prefect UI. Deployed per machine as `<machine>-review` (no
schedule): a physicist opens the deployment, clicks Run and fills the form (reviewer, decision,
comment, which results); the run appends the reviews to the trail, as `python -m flows.review` does,
and ends named by what it recorded ("Completed: 12 approved").

No `from __future__ import annotations` here: Prefect validates a run's parameters against the
signature's types, which must be real objects, not strings to resolve."""

import datetime as dt
from typing import Literal

from prefect import flow, get_run_logger
from prefect.states import Completed, State

from blocks.machine_config import run_settings
from linac_qa.review import queue
from linac_qa.review.trail import Decision, Trail
from linac_qa.run import resolve_directory

DONE = {Decision.APPROVE: "approved", Decision.REJECT: "rejected", Decision.COMMENT: "commented"}


@flow(name="review-qa", persist_result=False, retries=0)
def review_qa(
    reviewer: str,
    decision: Literal["approve", "reject", "comment"] = "approve",
    comment: str = "",
    results: tuple[str, ...] = (),  # the form shows a list, empty by default
    until: dt.date | None = None,
    directory: str | None = None,
    config: str | None = None,
    config_block: str | None = None,
) -> State:
    """Review this machine's QA results: approve, reject or comment on them, signed with your name.

    Args:
        reviewer: Your name, as it will stand in the audit trail.
        decision: approve signs the results; reject and comment need a comment saying why.
        comment: Why (required to reject or comment).
        results: The ids of the results (the short ids the nightly run's "pending review" artifact
            and `python -m flows.review DIR list` show). Empty: every result pending review
            acquired up to `until`.
        until: With no results given: the last acquisition day to review (default: today).
        directory: The machine's QA folder (set by the deployment).
        config: Its config file (set by the deployment).
        config_block: Its machine-config block (set by the deployment).
    """
    settings = run_settings(config, config_block)
    root = resolve_directory(directory, settings)
    last_day = (until or dt.date.today()).isoformat()
    trail = Trail(root)
    try:
        ids = queue.chosen(trail, list(results), queue.time_bound(last_day, end=True))
        given = queue.decide(trail, ids, Decision(decision), reviewer, comment, dt.datetime.now(dt.UTC))
    finally:
        trail.close()
    logger = get_run_logger()
    for r in given:
        logger.info("%s %s by %s: %s", queue.short_id(r.result_id), DONE[r.decision], r.reviewer, r.result_id)
    done = f"{len(given)} {DONE[Decision(decision)]}"
    which = "the results given" if results else f"pending up to {last_day}"
    return Completed(name=f"Completed: {done}", message=f"{root}: {done} by {reviewer.strip()} ({which})")
