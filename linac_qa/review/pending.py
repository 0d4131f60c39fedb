"""What needs a person's review, and what is still waiting for one: the minimal rule the due list
and the monthly report read from the trail (the review queue applies the same rule when it
auto-reviews). A result needs review when it failed or is an error, lies at tolerance or action
level, completed a drift rule, or was not judged; it is pending until a person (not `auto`) approves
or rejects it. A comment signs nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from linac_qa.history.store import from_text
from linac_qa.review.trail import Decision, Entry, Review

AUTO = "auto"
SIGNING = (Decision.APPROVE, Decision.REJECT)


def needs_review(e: Entry) -> bool:
    return (
        e.status in ("failed", "error") or e.level in ("tolerance", "action") or bool(e.drift) or not e.judged
    )


def signed(reviews: Iterable[Review]) -> set[str]:
    """The results a person approved or rejected."""
    return {r.result_id for r in reviews if r.decision in SIGNING and r.reviewer != AUTO}


def pending(entries: Iterable[Entry], reviews: Iterable[Review]) -> list[Entry]:
    done = signed(reviews)
    return [e for e in entries if needs_review(e) and e.result_id not in done]


def waiting_longer_than(
    entries: Iterable[Entry], reviews: Iterable[Review], days: float, now: dt.datetime
) -> list[Entry]:
    """Pending results recorded more than `days` ago."""
    limit = now - dt.timedelta(days=days)
    return [e for e in pending(entries, reviews) if from_text(e.recorded) < limit]
