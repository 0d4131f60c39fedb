"""A seeded month of one machine's QA (issue 17, acceptance 3), written straight into the review
trail, the record and the results' `.json`, as the runs would leave them: March 2024 on TrueBeam1,
30 nightly field-analysis results (one failing at action level on the 10th, passed again on the 11th:
superseded; one at tolerance on the 15th), a weekly picket fence done on the 4th, 11th and 25th
(the 18th missed; the 25th failed, never repeated), three signed reviews and a comment."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from linac_qa.history.record import Record, Row
from linac_qa.history.series import Level, SeriesKey
from linac_qa.history.store import from_text, to_text
from linac_qa.model import MetricLevel
from linac_qa.review import queue
from linac_qa.review.trail import Decision, Entry, Review, Trail

MACHINE = "TrueBeam1"
MONTH = "2024-03"
CONFIG = "picket-fence:\n  schedule: weekly\n  window-days: 1\n"
SOFTWARE = {"linac-qa-flows": "0.9.1", "pylinac": "3.49.0", "config_hash": "5eed0f0a11ce5eed"}
BASELINE = 1.5
FA_FAILED, FA_REPEAT, FA_TOLERANCE, FA_COMMENTED = 10, 11, 15, 20
PF_DAYS, PF_FAILED = (4, 11, 25), 25


@dataclass(frozen=True)
class Seeded:
    entries: list[Entry]
    reviews: list[Review]


def at(day: int, month: int = 3, hour: int = 7) -> dt.datetime:
    return dt.datetime(2024, month, day, hour, 30, tzinfo=dt.UTC)


def sha(name: str) -> str:
    return (name.encode().hex() * 8)[:64]


def seed_month(directory: Path) -> Seeded:
    entries: list[Entry] = []
    rows: list[Row] = []
    for day in range(1, 31):
        failed, level = day == FA_FAILED, "action" if day == FA_FAILED else "ok"
        if day in (FA_TOLERANCE, FA_COMMENTED):
            level = "tolerance"
        value = {"action": 3.9, "tolerance": 2.7}.get(level, 1.5 + day / 1000)
        entry, row = _result(directory, "field-analysis", "energy=6X", at(day), failed, level, value, "%")
        entries.append(entry)
        rows.append(row)
    for month, day in ((2, 26), *((3, d) for d in PF_DAYS)):
        failed = (month, day) == (3, PF_FAILED)
        value = 0.62 if failed else 0.21
        entry, row = _result(directory, "picket-fence", "", at(day, month), failed, None, value, "mm")
        entries.append(entry)
        rows.append(row)
    record = Record(directory)
    trail = Trail(directory)
    try:
        record.add(rows)
        for entry in entries:
            queue.record(trail, entry, from_text(entry.recorded))
        by_day = {(e.analysis, e.acquired): e.result_id for e in entries}

        def rid(analysis: str, day: int) -> str:
            return by_day[(analysis, to_text(at(day)))]

        reviews = [
            trail.append(review)
            for review in (
                Review(rid("field-analysis", FA_FAILED), Decision.APPROVE, "Dr Ada Smith",
                       to_text(at(12, hour=9)), "flatness repeated after the water tank check"),
                Review(rid("picket-fence", PF_FAILED), Decision.REJECT, "Dr Ben Jones",
                       to_text(at(26, hour=10)), "leaf 23 out of position; service called"),
                Review(rid("field-analysis", FA_TOLERANCE), Decision.APPROVE, "Dr Ada Smith",
                       to_text(at(16, hour=8)), ""),
                Review(rid("field-analysis", FA_COMMENTED), Decision.COMMENT, "Dr Ben Jones",
                       to_text(at(21, hour=8)), "watch the symmetry"),
            )
        ]  # fmt: skip
    finally:
        record.close()
        trail.close()
    return Seeded(entries, reviews)


def _result(
    directory: Path,
    analysis: str,
    variant: str,
    acquired: dt.datetime,
    failed: bool,
    level: str | None,
    value: float,
    unit: str,
) -> tuple[Entry, Row]:
    stem = f"{analysis}/{acquired:%Y-%m-%d}_{analysis}_analysis"
    source = f"{analysis}/{acquired:%Y-%m-%d}.dcm"
    metric = "flatness_horizontal_percent" if analysis == "field-analysis" else "max_error_mm"
    status = "failed" if failed else "passed"
    reason = f"{metric} {value} {unit}" + (f" beyond the {level} level" if failed else "")
    document = directory / f"{stem}.json"
    document.parent.mkdir(parents=True, exist_ok=True)
    provenance = {"inputs": {"count": 1, "sha256": {source: sha(source)}}, **SOFTWARE}
    ours = {"analysis": analysis, "status": status, "reason": reason, "provenance": provenance}
    document.write_text(json.dumps({"linac-qa-flows": ours, "pylinac": {}}), encoding="utf-8")
    entry = Entry(
        f"{stem}.json", MACHINE, analysis, variant, to_text(acquired), status, level, None, True, reason,
        f"{stem}.pdf", {source: sha(source)}, to_text(acquired + dt.timedelta(hours=18)),
    )  # fmt: skip
    judgement = (
        MetricLevel(
            level=Level(level), value=value, baseline=BASELINE, tolerance=(-1.0, 1.0), action=(-2.0, 2.0)
        )
        if level
        else None
    )
    row = Row(
        SeriesKey(MACHINE, analysis, metric, variant), to_text(acquired), value, unit, entry.result_id,
        status, entry.report, entry.sources, judgement,
    )  # fmt: skip
    return entry, row
