"""The review queue, read from the trail (linac_qa.review.trail): what needs a person's review, what
was auto-reviewed, what a later passing repeat superseded, and the reviews given.

The order question, as decided here: auto-review happens once, when a clean result is recorded (an
audit row by `auto`, with the time and the rule). A person's `comment` on a result, given before or
after, takes it out of auto-review: the auto row stays in the trail, but the result is pending
until a person approves or rejects it. Between people, the latest approve or reject wins; a
comment never undoes a person's decision. A superseded failure stays pending: it still needs a
signature (QATrack+ asks for one too), and is shown "repeated: passed on <date>"."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from linac_qa.history.store import to_text
from linac_qa.review.trail import Decision, Entry, Review, Trail

AUTO = "auto"  # the reviewer name of auto-review; refused as a person's name
SHORT = 7  # characters of a short id: what `list` shows and a person types


class State(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Item:
    """A result with its reviews and the state they give it."""

    entry: Entry
    reviews: list[Review]
    state: State
    auto: bool  # approved by auto-review alone
    repeated: Entry | None  # the later passing acquisition that supersedes this failure

    @property
    def short(self) -> str:
        return short_id(self.entry.result_id)

    @property
    def needs(self) -> str:
        """Why it needs a person's review; "" for a clean result."""
        return needs_review(self.entry)


class ReviewError(ValueError):
    """A review that cannot be given (unknown id, missing name or comment): nothing is recorded."""


def short_id(result_id: str) -> str:
    """Stable for a result whatever happens to the trail's rows (a re-analysis replaces its row)."""
    return hashlib.sha256(result_id.encode()).hexdigest()[:SHORT]


def needs_review(e: Entry) -> str:
    """What makes a result need review, in words; "" when it is clean."""
    if e.status == "error":
        return "error"
    if e.status == "failed":
        return f"failed ({e.level} level)" if e.level == "action" else "failed"
    if not e.judged:
        return "not judged"
    if e.level == "tolerance":
        return "tolerance level"
    if e.drift:
        return "drift"
    return ""


def clean_rule(e: Entry) -> str:
    """The rule auto-review records for a clean result."""
    if e.level == "ok":
        return "clean: passed, every judged metric ok, no drift"
    return "clean: passed its analysis's criteria, no level applies, no drift"


def record(trail: Trail, entry: Entry, now: dt.datetime) -> Review | None:
    """A result into the trail as the run records it; a clean one is auto-reviewed, once, unless a
    person has commented on it (a re-analysis with --force replaces the row and keeps the reviews)."""
    trail.add(entry)
    if needs_review(entry):
        return None
    given = trail.reviews([entry.result_id])
    if any(r.reviewer == AUTO or r.decision is Decision.COMMENT for r in given):
        return None
    return trail.append(Review(entry.result_id, Decision.APPROVE, AUTO, to_text(now), rule=clean_rule(entry)))


def items(
    trail: Trail, machine: str | None = None, since: str | None = None, until: str | None = None
) -> list[Item]:
    """Every result in the trail (acquired in [since, until] when given), oldest first."""
    everything = trail.entries(machine)
    given: dict[str, list[Review]] = defaultdict(list)
    for r in trail.reviews():
        given[r.result_id].append(r)
    repeats = superseding(everything)
    shown = [e for e in everything if _within(e, since, until)]
    return [_item(e, given[e.result_id], repeats.get(e.result_id)) for e in shown]


def _within(e: Entry, since: str | None, until: str | None) -> bool:
    when = _when(e)
    return (since is None or when >= since) and (until is None or when <= until)


def _when(e: Entry) -> str:
    """An error before any image was read has no acquisition time: it is dated when recorded."""
    return e.acquired or e.recorded


def _item(e: Entry, reviews: list[Review], repeated: Entry | None) -> Item:
    people = [r for r in reviews if r.reviewer != AUTO]
    decided = [r for r in people if r.decision is not Decision.COMMENT]
    if decided:
        state = State.APPROVED if decided[-1].decision is Decision.APPROVE else State.REJECTED
        return Item(e, reviews, state, False, repeated)
    commented = any(r.decision is Decision.COMMENT for r in people)
    auto = not commented and not needs_review(e) and any(r.reviewer == AUTO for r in reviews)
    return Item(e, reviews, State.APPROVED if auto else State.PENDING, auto, repeated)


def superseding(entries: Iterable[Entry]) -> dict[str, Entry]:
    """For each failure or error, the first later acquisition of the same machine, analysis and
    variant that passed (and was judged). Derived, not stored: both results stay as they were recorded."""
    by_test: dict[tuple[str, str, str], list[Entry]] = defaultdict(list)
    for e in sorted(entries, key=_when):
        by_test[(e.machine, e.analysis, e.variant)].append(e)
    found: dict[str, Entry] = {}
    for series in by_test.values():
        waiting: list[Entry] = []
        for e in series:
            if e.status in ("failed", "error"):
                waiting.append(e)
            elif e.status == "passed" and e.judged and waiting:  # "not judged" is no pass
                found.update((w.result_id, e) for w in waiting if _when(w) < _when(e))
                waiting = []
    return found


def resolve(trail: Trail, ids: Iterable[str]) -> list[str]:
    """Result ids from what a person typed: a whole result id, a short id, or a prefix of one (4
    characters at least). ReviewError names what matches nothing, or more than one result."""
    known = [e.result_id for e in trail.entries()]
    shorts = {rid: short_id(rid) for rid in known}
    found: list[str] = []
    for typed in ids:
        if typed in shorts:
            matches = [typed]
        elif len(typed) >= 4:
            matches = [rid for rid, s in shorts.items() if s.startswith(typed.lower())]
        else:
            matches = []
        if len(matches) != 1:
            raise ReviewError(
                f"{typed!r} is {'no result' if not matches else 'ambiguous'} in the review trail"
                + (f": {', '.join(shorts[m] for m in matches)}" if matches else " (see the list command)")
            )
        found += [m for m in matches if m not in found]
    return found


def chosen(trail: Trail, typed: list[str], until: str | None, machine: str | None = None) -> list[str]:
    """The results a person named, or (none named) every one pending review up to `until`."""
    return resolve(trail, typed) if typed else pending(trail, until, machine)


def time_bound(text: str, *, end: bool) -> str:
    """A trail time from a date or date-time (local unless it says otherwise); a date alone, as an
    end, is the end of that day. ValueError when it is neither."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date: {text!r} (e.g. 2024-03-31 or 2024-03-31T18:00)") from None
    if end and len(text) == 10:
        when += dt.timedelta(days=1, microseconds=-1)
    return to_text(when if when.tzinfo else when.astimezone())


def pending(trail: Trail, until: str | None = None, machine: str | None = None) -> list[str]:
    """The result ids pending review acquired up to `until`, oldest first."""
    return [i.entry.result_id for i in items(trail, machine, until=until) if i.state is State.PENDING]


def decide(
    trail: Trail,
    result_ids: list[str],
    decision: Decision,
    reviewer: str,
    comment: str,
    now: dt.datetime,
) -> list[Review]:
    """A person's review of each result, appended in the order given. Checked first, so that a
    refused review records nothing: a name (not "auto"), a comment to reject or to comment."""
    reviewer, comment = reviewer.strip(), comment.strip()
    if not reviewer:
        raise ReviewError("a review needs the reviewer's name")
    if reviewer.lower() == AUTO:
        raise ReviewError(f"{AUTO!r} is auto-review's name, not a person's")
    if decision is not Decision.APPROVE and not comment:
        raise ReviewError(f"{decision.value} needs a comment saying why")
    at = to_text(now)
    return [trail.append(Review(rid, decision, reviewer, at, comment)) for rid in result_ids]
