"""What the nightly digest reminds of, read from the review trail: each scheduled test that is
overdue, and each result pending a person's review for longer than `email.pending-days`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from linac_qa.config import Settings
from linac_qa.history.store import from_text
from linac_qa.notify.message import Reminders
from linac_qa.records.ledger import STATE_DIR
from linac_qa.review import queue
from linac_qa.review.due import due_list, schedules_of
from linac_qa.review.trail import TRAIL_FILE, Entry, Trail


def reminders(directory: Path, settings: Settings, now: dt.datetime) -> Reminders:
    """`now` in the time zone whose days count (the machine's): a test is due on a day."""
    schedules = schedules_of(settings.analyses)
    days = settings.email.pending_days
    if not schedules and not days:
        return Reminders()
    unit = settings.general.unit or None  # when the config names the machine, only its results
    items = _items(directory, unit)
    entries = [i.entry for i in items]
    overdue = [d.text() for d in due_list(entries, schedules, now, [unit] if unit else []) if d.overdue]
    limit = now - dt.timedelta(days=days)
    waiting = [
        i.entry
        for i in items
        if days and i.state is queue.State.PENDING and from_text(i.entry.recorded) < limit
    ]
    return Reminders(tuple(overdue), tuple(_waiting(e, now) for e in waiting), days)


def _items(directory: Path, machine: str | None) -> list[queue.Item]:
    """Read without creating it: a directory whose runs have recorded nothing has none yet."""
    if not (directory / STATE_DIR / TRAIL_FILE).is_file():
        return []
    trail = Trail(directory)
    try:
        return queue.items(trail, machine)
    finally:
        trail.close()


def _waiting(e: Entry, now: dt.datetime) -> str:
    acquired = from_text(e.acquired).astimezone(now.tzinfo).strftime("%Y-%m-%d %H:%M") if e.acquired else "?"
    what = (
        e.status
        + (f", {e.level} level" if e.level not in (None, "ok") else "")
        + (", drift" if e.drift else "")
    )
    days = (now - from_text(e.recorded)).days
    test = e.analysis.replace("-", " ")
    return f"{e.machine}: {test} of {acquired} ({what}), waiting {days} days: {e.result_id}"
