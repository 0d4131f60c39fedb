"""The review trail: every result that reached a verdict (passed, failed or error), and every review
given of one, in `DIR/.linac-qa/reviews.sqlite`. Reviews are audit rows: appended, never changed or
removed (the database itself refuses, whatever writes to it). The file is apart from the record,
which can be deleted and rebuilt from the outputs: a signature cannot be rebuilt."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from linac_qa.history.record import result_id
from linac_qa.history.store import connect, to_text
from linac_qa.intake.hashing import listed_hashes
from linac_qa.model import AnalysisResult, Status

TRAIL_FILE = "reviews.sqlite"
REVIEWED = (Status.PASSED, Status.FAILED, Status.ERROR)
SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    result_id TEXT PRIMARY KEY,     -- as the record names it (history.record.result_id)
    machine TEXT NOT NULL,
    analysis TEXT NOT NULL,
    variant TEXT NOT NULL,
    acquired TEXT,                  -- from the data, UTC (store.to_text); NULL: an error before any was read
    status TEXT NOT NULL,           -- passed | failed | error
    level TEXT,                     -- ok | tolerance | action; NULL: no level applied
    drift TEXT,                     -- the drift warnings, "; "-joined; NULL: none
    judged INTEGER NOT NULL,        -- 0: nothing decided the status ("not judged")
    reason TEXT NOT NULL,
    report TEXT,                    -- the PDF, relative to the directory
    sources TEXT NOT NULL,          -- JSON {file: sha256}
    recorded TEXT NOT NULL          -- when the run recorded it, UTC
);
CREATE INDEX IF NOT EXISTS results_by_test ON results (machine, analysis, variant, acquired);
CREATE TABLE IF NOT EXISTS reviews (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- the trail's order
    result_id TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject', 'comment')),
    reviewer TEXT NOT NULL,         -- a person's name, or "auto"
    at TEXT NOT NULL,               -- UTC (store.to_text)
    comment TEXT NOT NULL DEFAULT '',
    rule TEXT                       -- for reviewer "auto": the rule that approved it
);
CREATE INDEX IF NOT EXISTS reviews_by_result ON reviews (result_id, seq);
CREATE TRIGGER IF NOT EXISTS reviews_never_change BEFORE UPDATE ON reviews
BEGIN SELECT RAISE(ABORT, 'reviews are audit rows: they are never changed'); END;
CREATE TRIGGER IF NOT EXISTS reviews_never_removed BEFORE DELETE ON reviews
BEGIN SELECT RAISE(ABORT, 'reviews are audit rows: they are never removed'); END;
"""


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    COMMENT = "comment"  # a remark that signs nothing; on a clean result it blocks auto-review


@dataclass(frozen=True)
class Entry:
    """A result as review sees it."""

    result_id: str
    machine: str
    analysis: str
    variant: str
    acquired: str | None
    status: str
    level: str | None
    drift: str | None
    judged: bool
    reason: str
    report: str | None
    sources: dict[str, str]
    recorded: str


@dataclass(frozen=True)
class Review:
    result_id: str
    decision: Decision
    reviewer: str
    at: str
    comment: str = ""
    rule: str | None = None
    seq: int = 0  # given by the trail when appended


def entry_of(result: AnalysisResult, sources: dict[str, str], recorded: dt.datetime) -> Entry | None:
    """The trail's row for a result; None for what needs no review (ignored files)."""
    if result.status not in REVIEWED or not result.analysis:
        return None
    drifts = [w for w in result.warnings if w.startswith("drift: ")]
    return Entry(
        result_id=result_id(result),
        machine=result.unit or "",
        analysis=result.analysis,
        variant=result.variant or "",
        acquired=to_text(result.acquired) if result.acquired else None,
        status=result.status.value,
        level=result.level.value if result.level else None,
        drift="; ".join(drifts) or None,
        judged=result.judged,
        reason=result.reason,
        report=next((o for o in result.outputs if o.endswith(".pdf")), None),
        sources=listed_hashes(sources),
        recorded=to_text(recorded),
    )


class Trail:
    def __init__(self, directory: Path):
        self.directory = directory
        self.conn = connect(directory, TRAIL_FILE, SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def add(self, entry: Entry) -> None:
        """A result analysed again (--force) replaces its row; the reviews given of it stay."""
        self.conn.execute(
            "INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                entry.result_id, entry.machine, entry.analysis, entry.variant, entry.acquired,
                entry.status, entry.level, entry.drift, int(entry.judged), entry.reason, entry.report,
                json.dumps(entry.sources, sort_keys=True), entry.recorded,
            ),
        )  # fmt: skip

    def entries(
        self, machine: str | None = None, since: str | None = None, until: str | None = None
    ) -> list[Entry]:
        """By acquisition time (those without one last), acquired in [since, until] when given."""
        sql, args = "SELECT * FROM results WHERE 1=1", list[str]()
        if machine is not None:
            sql, args = sql + " AND machine = ?", [*args, machine]
        if since is not None:
            sql, args = sql + " AND acquired >= ?", [*args, since]
        if until is not None:
            sql, args = sql + " AND acquired <= ?", [*args, until]
        rows = self.conn.execute(sql + " ORDER BY acquired IS NULL, acquired, result_id", args)
        return [_entry(r) for r in rows]

    def append(self, review: Review) -> Review:
        cur = self.conn.execute(
            "INSERT INTO reviews (result_id, decision, reviewer, at, comment, rule) VALUES (?,?,?,?,?,?)",
            (review.result_id, review.decision, review.reviewer, review.at, review.comment, review.rule),
        )
        assert cur.lastrowid is not None
        return Review(**{**review.__dict__, "seq": cur.lastrowid})

    def reviews(self, result_ids: list[str] | None = None) -> list[Review]:
        """In the order they were given."""
        sql, args = "SELECT seq, result_id, decision, reviewer, at, comment, rule FROM reviews", []
        if result_ids is not None:
            sql += f" WHERE result_id IN ({','.join('?' * len(result_ids))})"
            args = list(result_ids)
        rows = self.conn.execute(sql + " ORDER BY seq", args)
        return [Review(rid, Decision(d), who, at, text, rule, n) for n, rid, d, who, at, text, rule in rows]


def _entry(r: tuple[Any, ...]) -> Entry:
    rid, machine, analysis, variant, acquired, status, level, drift = r[:8]
    judged, reason, report, sources, recorded = r[8:]
    return Entry(
        rid, machine, analysis, variant, acquired, status, level, drift, bool(judged), reason, report,
        json.loads(sources), recorded,
    )  # fmt: skip
