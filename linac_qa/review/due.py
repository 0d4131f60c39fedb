"""What is due and overdue, per machine and scheduled test, from the trail's entries: the clock is
passed in, so the answers can be checked at any moment.

A test was done on a day when an acquisition of it, judged passed or failed, was made then (an
`error` measured nothing). It is due again on the schedule's next day after that
(schedules.next_due), and overdue once that day and its `window-days` of grace have passed: "overdue
by N days" counts from the due day. Days are the clock's: acquisitions are read in its time zone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from linac_qa.history.store import from_text
from linac_qa.review.schedules import next_due
from linac_qa.review.trail import Entry
from linac_qa.sections import AnalysisSettings

DONE = ("passed", "failed")


@dataclass(frozen=True)
class Schedule:
    schedule: str
    window_days: float = 0


@dataclass(frozen=True)
class Due:
    machine: str
    analysis: str
    schedule: str
    last: dt.date | None  # the last day it was done; None: never
    due: dt.date | None  # the next day it is due; None: never done, or a rule that has ended
    overdue_days: int | None  # None: not overdue; 0 for a test never done

    @property
    def overdue(self) -> bool:
        return self.overdue_days is not None

    def text(self) -> str:
        """`TrueBeam1: picket fence overdue by 3 days`."""
        test = f"{self.machine}: {self.analysis.replace('-', ' ')}"
        if self.last is None:
            return f"{test} never acquired ({self.schedule})"
        if self.overdue_days is None:
            return f"{test} due {self.due}" if self.due else f"{test} no longer due"
        days = "1 day" if self.overdue_days == 1 else f"{self.overdue_days} days"
        return f"{test} overdue by {days} (due {self.due}, last {self.last})"


def done_days(entries: Iterable[Entry], machine: str, analysis: str, tz: dt.tzinfo | None) -> list[dt.date]:
    """The days (in `tz`) a test was done on a machine, in order."""
    return sorted(
        from_text(e.acquired).astimezone(tz).date()
        for e in entries
        if e.machine == machine and e.analysis == analysis and e.acquired and e.status in DONE
    )


def due_list(
    entries: list[Entry], schedules: Mapping[str, Schedule], now: dt.datetime, machines: Iterable[str] = ()
) -> list[Due]:
    """Every scheduled test of every machine (those given and those in the entries), overdue first."""
    everyone = sorted({*machines, *(e.machine for e in entries)})
    found = [
        due_of(machine, analysis, plan, done_days(entries, machine, analysis, now.tzinfo), now)
        for machine in everyone
        for analysis, plan in schedules.items()
    ]
    return sorted(found, key=lambda d: (not d.overdue, -(d.overdue_days or 0), d.machine, d.analysis))


def due_of(machine: str, analysis: str, plan: Schedule, days: list[dt.date], now: dt.datetime) -> Due:
    if not days:
        return Due(machine, analysis, plan.schedule, None, None, 0)
    last = days[-1]
    due = next_due(plan.schedule, last)
    late = due is not None and now.date() > due + dt.timedelta(days=plan.window_days)
    return Due(machine, analysis, plan.schedule, last, due, (now.date() - due).days if late and due else None)


def missed(
    plan: Schedule, days: list[dt.date], start: dt.date, end: dt.date, today: dt.date
) -> list[dt.date]:
    """The due days in [start, end) that no acquisition met within its window, as far as `today`
    can tell (a window still open is not a miss). A miss moves the schedule on from its due day;
    a test never done before `start` is first due on the schedule's first day from `start`."""
    grace = dt.timedelta(days=plan.window_days)
    earlier = [d for d in days if d < start]
    last = earlier[-1] if earlier else start - dt.timedelta(days=1)
    later = [d for d in days if d > last]
    found: list[dt.date] = []
    while (due := next_due(plan.schedule, last)) is not None and due < end:
        met = next((d for d in later if d > last), None)
        if met is not None and met <= due + grace:
            last = met
            continue
        if due + grace >= today:
            break
        if due >= start:  # a miss before the month moves the schedule on all the same
            found.append(due)
        last = due
    return found


def schedules_of(sections: Mapping[str, AnalysisSettings]) -> dict[str, Schedule]:
    """The scheduled sections of a config (Settings.analyses), by name."""
    return {name: Schedule(s.schedule, s.window_days) for name, s in sections.items() if s.schedule}
