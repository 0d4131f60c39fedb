"""Schedules and what is due (issue 17, acceptance 1: overdue detection with a frozen clock, weekly
and monthly schedules): plain functions, the clock passed in, entries written as the trail holds them."""

from __future__ import annotations

import datetime as dt

import pytest

from linac_qa.config import ConfigError, load_settings
from linac_qa.history.store import to_text
from linac_qa.review.due import Schedule, due_list, missed, schedules_of
from linac_qa.review.schedules import next_due
from linac_qa.review.trail import Entry

UTC = dt.UTC


def entry(
    day: dt.date, analysis: str = "picket-fence", status: str = "passed", machine: str = "TrueBeam1"
) -> Entry:
    acquired = to_text(dt.datetime.combine(day, dt.time(7, 30), UTC))
    return Entry(
        f"{analysis}/{day}_analysis.json", machine, analysis, "", acquired, status, None, None, True,
        "synthetic", None, {}, acquired,
    )  # fmt: skip


def at(day: str, hour: int = 6) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), UTC)


def test_schedules_are_read_from_each_section_and_bad_ones_named() -> None:
    settings = load_settings(
        text="picket-fence:\n  schedule: Weekly\n  window-days: 2\nmpc:\n  schedule: daily\n"
    )
    assert schedules_of(settings.analyses) == {
        "picket-fence": Schedule("weekly", 2),
        "mpc": Schedule("daily", 0),
    }
    assert schedules_of(load_settings().analyses) == {}  # the default: nothing is ever overdue
    for text, key in [
        ("starshot:\n  schedule: fortnightly\n", "starshot.schedule"),
        ("starshot:\n  schedule: FREQ=HOURLY\n", "starshot.schedule"),
        ("starshot:\n  schedule: FREQ=WEEKLY;BYDAY=XX\n", "starshot.schedule"),
        ("starshot:\n  window-days: -1\n", "starshot.window-days"),
    ]:
        with pytest.raises(ConfigError) as caught:
            load_settings(text=text, source="tb1.yml")
        assert f"tb1.yml, line 2: {key}: " in str(caught.value)
    assert "daily, weekly, monthly, annual, or an RFC 5545 rule" in str(caught.value) or key.endswith("days")


def test_next_due_by_name_and_by_rule() -> None:
    d = dt.date(2024, 1, 31)
    assert next_due("daily", d) == dt.date(2024, 2, 1)
    assert next_due("weekly", d) == dt.date(2024, 2, 7)
    assert next_due("monthly", d) == dt.date(2024, 2, 29)  # not 31 March
    assert next_due("annual", d) == dt.date(2025, 1, 31)
    assert next_due("FREQ=WEEKLY;BYDAY=MO", d) == dt.date(2024, 2, 5)  # a Wednesday, then Monday
    assert next_due("FREQ=MONTHLY;BYMONTHDAY=1", d) == dt.date(2024, 2, 1)
    assert next_due("FREQ=DAILY;COUNT=1", d) is None  # a rule that has ended


def test_overdue_with_a_frozen_clock() -> None:
    entries = [
        entry(dt.date(2024, 3, 4), "mpc"),  # daily: due the 5th
        entry(dt.date(2024, 3, 1), "picket-fence"),  # weekly: due the 8th
        entry(dt.date(2024, 2, 1), "winston-lutz"),  # monthly: due 1 March; 2 days of grace
        entry(dt.date(2024, 3, 6), "starshot", status="error"),  # an error measured nothing
    ]
    plans = {
        "mpc": Schedule("daily"),
        "picket-fence": Schedule("weekly"),
        "winston-lutz": Schedule("monthly", window_days=2),
        "starshot": Schedule("FREQ=WEEKLY;BYDAY=MO"),
    }
    found = {d.analysis: d for d in due_list(entries, plans, at("2024-03-05", 23))}
    assert not found["mpc"].overdue and found["mpc"].due == dt.date(2024, 3, 5)  # due today, not late
    assert not found["picket-fence"].overdue
    assert found["winston-lutz"].overdue_days == 4  # from its due day, past the 2 days of grace
    assert found["starshot"].text() == "TrueBeam1: starshot never acquired (FREQ=WEEKLY;BYDAY=MO)"
    assert found["starshot"].overdue

    later = {d.analysis: d for d in due_list(entries, plans, at("2024-03-11"))}
    assert later["mpc"].text() == "TrueBeam1: mpc overdue by 6 days (due 2024-03-05, last 2024-03-04)"
    assert later["picket-fence"].text().startswith("TrueBeam1: picket fence overdue by 3 days")
    latest_first = due_list(entries, plans, at("2024-03-11"))
    assert latest_first[0].analysis == "winston-lutz"

    # The window: a monthly test due 1 March with 2 days of grace is not late on the 3rd, late on the 4th.
    wl = {"winston-lutz": Schedule("monthly", window_days=2)}
    assert not due_list(entries, wl, at("2024-03-03", 23))[0].overdue
    assert due_list(entries, wl, at("2024-03-04"))[0].overdue_days == 3


def test_missed_weekly_and_monthly_tests_in_a_month() -> None:
    weekly = Schedule("weekly", window_days=1)
    days = [dt.date(2024, 2, 26), dt.date(2024, 3, 4), dt.date(2024, 3, 19), dt.date(2024, 3, 25)]
    march = (dt.date(2024, 3, 1), dt.date(2024, 4, 1))
    # Due the 11th (not met by the 12th): missed; then due the 18th, met the 19th, due 26th, met the 25th.
    assert missed(weekly, days, *march, today=dt.date(2024, 4, 1)) == [dt.date(2024, 3, 11)]
    # Asked on the 12th, the 11th's window is still open: not yet a miss.
    assert missed(weekly, days[:2], *march, today=dt.date(2024, 3, 12)) == []
    monthly = Schedule("FREQ=MONTHLY;BYMONTHDAY=1")
    assert missed(monthly, [dt.date(2024, 1, 15)], *march, today=dt.date(2024, 4, 2)) == [dt.date(2024, 3, 1)]
    assert missed(Schedule("daily"), [], *march, today=dt.date(2024, 3, 4)) == [
        dt.date(2024, 3, 1), dt.date(2024, 3, 2), dt.date(2024, 3, 3),
    ]  # fmt: skip
