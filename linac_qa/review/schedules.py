"""How often a test is due: `daily`, `weekly`, `monthly`, `annual`, or an RFC 5545 recurrence rule
(`FREQ=WEEKLY;BYDAY=MO`, through dateutil). Dates only: a test is due on a day, done on a day."""

from __future__ import annotations

import datetime as dt
import re

from dateutil.relativedelta import relativedelta
from dateutil.rrule import rrule, rrulestr

# A month after 31 January is 28 or 29 February (relativedelta), not 31 March (an rrule's reading).
NAMED = {
    "daily": relativedelta(days=1),
    "weekly": relativedelta(weeks=1),
    "monthly": relativedelta(months=1),
    "annual": relativedelta(years=1),
}
# Tests are done on days: a rule that repeats within a day is a mistake.
_DAY_OR_LONGER = re.compile(r"(^|;)FREQ=(DAILY|WEEKLY|MONTHLY|YEARLY)(;|$)", re.IGNORECASE)
ALLOWED = "daily, weekly, monthly, annual, or an RFC 5545 rule such as FREQ=WEEKLY;BYDAY=MO"


def check_schedule(value: str) -> str:
    """The schedule as kept (a name in lower case, a rule as given); ValueError saying what is allowed."""
    text = value.strip()
    if text.lower() in NAMED:
        return text.lower()
    rule = text.removeprefix("RRULE:")
    if not _DAY_OR_LONGER.search(rule):
        raise ValueError(f"must be {ALLOWED} (FREQ DAILY, WEEKLY, MONTHLY or YEARLY)")
    try:
        _rule(rule, dt.date(2000, 1, 1))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a valid RFC 5545 rule ({exc}); must be {ALLOWED}") from None
    return rule


def next_due(schedule: str, after: dt.date) -> dt.date | None:
    """The first day after `after` (the last time the test was done) that it is due again; None
    when a rule has ended (COUNT, UNTIL). A rule is counted from `after`: FREQ=WEEKLY alone is
    a week after it, FREQ=WEEKLY;BYDAY=MO the next Monday."""
    if schedule in NAMED:
        return after + NAMED[schedule]
    following = _rule(schedule, after).after(_midnight(after), inc=False)
    return following.date() if following else None


def _rule(text: str, start: dt.date) -> rrule:
    parsed = rrulestr(text, dtstart=_midnight(start))
    if not isinstance(parsed, rrule):
        raise ValueError("one RRULE only")
    return parsed


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())
