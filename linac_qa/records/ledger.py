"""The ledger: what was looked at, when, with what verdict. SQLite under `DIR/.linac-qa/`.

It is the source of truth for "already done" (not Prefect's cache, which is opaque and
per-Python-version), and the results store for history and reports.

One file and one connection hold three stores, each owning its queries: the done files, results and
runs (here), the mail outbox (`notify.outbox.Outbox`) and the copies from sources
(`intake.sources.SourceCopies`), the last two built on this connection (`query`, `transaction`).
The schema of every table and its upgrades stay here, so that a ledger is created and upgraded
whole, in one place, whichever store a caller uses first.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linac_qa.model import AnalysisResult
from linac_qa.records.versions import Provenance

STATE_DIR = ".linac-qa"
SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,          -- relative to the directory, POSIX separators
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT,
    status TEXT NOT NULL,
    analysis TEXT,
    result_id INTEGER REFERENCES results(id),
    config_hash TEXT,
    pylinac_version TEXT,
    recorded TEXT NOT NULL,
    linac_qa_version TEXT           -- added later: see ADDED_COLUMNS
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    run_id TEXT,
    analysis TEXT,
    model TEXT,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    files TEXT NOT NULL,
    outputs TEXT NOT NULL,
    metrics TEXT NOT NULL,
    unit TEXT,
    acquired TEXT,
    recorded TEXT NOT NULL,
    notified TEXT,                  -- the run that wrote its e-mail (or found none due); NULL: not yet
    judged INTEGER                  -- 1 when a criterion decided the status
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,         -- sending order: earlier runs' messages first
    created TEXT NOT NULL,
    run_id TEXT,                    -- the run that wrote it
    kind TEXT NOT NULL,             -- digest | analysis | quiet
    subject TEXT NOT NULL,
    sender TEXT NOT NULL,
    recipients TEXT NOT NULL,       -- JSON list: the envelope, as it was when the message was written
    message BLOB,                   -- the whole RFC 5322 message; dropped once sent (attachments are large)
    status TEXT NOT NULL,           -- pending | sending (handed to the server, no answer yet) | sent
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_attempt_run TEXT,
    sent TEXT,
    sent_run TEXT,
    message_id TEXT,                -- its Message-ID header: the same on every attempt
    attempt_started TEXT,           -- when the attempt in progress (status sending) began
    unknown_attempt TEXT            -- when an attempt began whose run died before the server's answer
);
CREATE TABLE IF NOT EXISTS copies (
    source TEXT NOT NULL,           -- the source folder, as configured
    path TEXT NOT NULL,             -- relative to the source folder, POSIX separators
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    copy TEXT NOT NULL,             -- where it went, relative to the directory
    copied TEXT NOT NULL,
    PRIMARY KEY (source, path)
);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,           -- e.g. when the last new acquisition arrived
    value TEXT NOT NULL
);
"""
# Columns added since the first ledgers: (table, column, declaration, value for the rows already there).
# Results recorded before the e-mail mark had their e-mail (or none) under the rules of their day; a
# ledger written before them gets them on opening, so it keeps working.
ADDED_COLUMNS = (
    ("results", "notified", "TEXT", "'before-tracking'"),
    ("notifications", "message_id", "TEXT", None),
    ("notifications", "attempt_started", "TEXT", None),
    ("notifications", "unknown_attempt", "TEXT", None),
    ("files", "linac_qa_version", "TEXT", None),
    # Whether a criterion decided the status: an interrupted run's e-mail, written later from the
    # ledger, must count its passes as the run itself would have.
    ("results", "judged", "INTEGER", "1"),
)


@dataclass(frozen=True)
class Known:
    size: int
    mtime_ns: int
    sha256: str | None
    status: str | None = None  # the verdict recorded for the file (files the run looked at)
    provenance: Provenance | None = None


@dataclass(frozen=True)
class FileStamp:
    path: str
    size: int
    mtime_ns: int
    sha256: str | None = None


class Ledger:
    """Thread-safe: results arrive on the worker pool's callback thread."""

    def __init__(self, db_path: Path, *, read_only: bool = False):
        self.path = db_path
        self._lock = threading.Lock()
        # read_only: for an observer of a ledger that runs write (benchmarks), which must create and
        # change nothing; sqlite3.OperationalError when there is no ledger yet.
        target = f"{db_path.resolve().as_uri()}?mode=ro" if read_only else str(db_path)
        self._db = sqlite3.connect(target, uri=read_only, check_same_thread=False, timeout=30)
        if read_only:
            return
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    @classmethod
    def open(cls, directory: Path, state_dir: Path | None = None) -> Ledger:
        folder = state_dir or directory / STATE_DIR
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder / "ledger.sqlite")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _add_columns(self) -> None:
        """Upgrades a ledger made by an earlier version; at the start of a run, not when the ledger
        is opened, because a dry run opens it and must change nothing."""
        with self.transaction() as db:
            for table, column, declaration, existing in ADDED_COLUMNS:
                have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if column in have:
                    continue
                try:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
                except sqlite3.OperationalError as exc:  # another process (a watch, a run) added it first
                    if "duplicate column" not in str(exc):
                        raise
                    continue
                if existing is not None:
                    db.execute(f"UPDATE {table} SET {column} = {existing}")

    def known(self) -> dict[str, Known]:
        rows = self.query(
            "SELECT path, size, mtime_ns, sha256, status, linac_qa_version, pylinac_version, config_hash"
            " FROM files"
        )
        return {p: Known(s, m, h, status, Provenance(*made)) for p, s, m, h, status, *made in rows}

    def touch(self, stamp: FileStamp) -> None:
        """A file that changed its size or mtime but not its content stays done."""
        with self.transaction() as db:
            db.execute(
                "UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?",
                (stamp.size, stamp.mtime_ns, stamp.path),
            )

    def record(
        self,
        result: AnalysisResult,
        stamps: list[FileStamp],
        *,
        run_id: str,
        provenance: Provenance,
    ) -> None:
        """The result and the state of every file it used, in one transaction: a crash leaves
        either both or neither, so the next run redoes exactly what was not recorded."""
        now = now_text()
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO results (run_id, analysis, model, status, reason, files, outputs, metrics, unit,"
                " acquired, recorded, judged) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    result.analysis,
                    result.model,
                    result.status.value,
                    result.reason,
                    json.dumps(result.files),
                    json.dumps(result.outputs),
                    json.dumps(result.metrics),
                    result.unit,
                    result.acquired.isoformat() if result.acquired else None,
                    now,
                    int(result.judged),
                ),
            )
            db.executemany(
                "INSERT INTO files (path, size, mtime_ns, sha256, status, analysis, result_id, config_hash,"
                " pylinac_version, linac_qa_version, recorded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns,"
                " sha256=excluded.sha256, status=excluded.status, analysis=excluded.analysis,"
                " result_id=excluded.result_id, config_hash=excluded.config_hash,"
                " pylinac_version=excluded.pylinac_version, linac_qa_version=excluded.linac_qa_version,"
                " recorded=excluded.recorded",
                [
                    (
                        s.path,
                        s.size,
                        s.mtime_ns,
                        s.sha256,
                        result.status.value,
                        result.analysis,
                        cur.lastrowid,
                        provenance.config_hash,
                        provenance.pylinac,
                        provenance.linac_qa,
                        now,
                    )
                    for s in stamps
                ],
            )

    def start_run(self, run_id: str, started: dt.datetime) -> None:
        self._add_columns()
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs (id, started) VALUES (?, ?)", (run_id, started.isoformat())
            )

    def finish_run(self, run_id: str, finished: dt.datetime, summary: dict[str, object]) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET finished = ?, summary = ? WHERE id = ?",
                (finished.isoformat(), json.dumps(summary, default=str), run_id),
            )

    def run_counts(self) -> tuple[int, int]:
        """(runs started, runs finished)."""
        [(started, finished)] = self.query("SELECT COUNT(*), COUNT(finished) FROM runs")
        return int(started), int(finished)

    def results(self) -> list[AnalysisResult]:
        """Every result recorded, oldest first."""
        return self._results("", ())

    def unreported_results(self, run_id: str) -> list[AnalysisResult]:
        """The results of `run_id` that no e-mail (nor the decision that none was due) covers yet."""
        return self._results("WHERE run_id = ? AND notified IS NULL", (run_id,))

    def _results(self, where: str, params: tuple[str, ...]) -> list[AnalysisResult]:
        rows = self.query(
            "SELECT analysis, model, status, reason, files, outputs, metrics, unit, acquired, judged"
            f" FROM results {where} ORDER BY id",
            params,
        )
        return [
            AnalysisResult(
                analysis=analysis,
                model=model,
                status=status,
                reason=reason,
                files=json.loads(files),
                outputs=json.loads(outputs),
                metrics=json.loads(metrics),
                unit=unit,
                acquired=dt.datetime.fromisoformat(acquired) if acquired else None,
                judged=bool(judged),
            )
            for analysis, model, status, reason, files, outputs, metrics, unit, acquired, judged in rows
        ]

    # -------------------------------------------------------------- small state
    def get_state(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM state WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_state(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO state (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def last_acquisition_recorded(self) -> str | None:
        """When the newest result of an analysis (not an ignored non-QA file) was recorded."""
        rows = self.query("SELECT MAX(recorded) FROM results WHERE analysis IS NOT NULL")
        return rows[0][0] if rows else None

    def last_unit(self) -> str | None:
        rows = self.query("SELECT unit FROM results WHERE unit IS NOT NULL ORDER BY id DESC LIMIT 1")
        return rows[0][0] if rows else None

    # -------------------------------------------------------------- for the stores on this connection
    def query(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        """Every row of one read, under the lock (results arrive on the pool's callback thread)."""
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Everything done on the connection it yields is committed together, or not at all."""
        with self._lock, self._db:
            yield self._db


def now_text() -> str:
    """Now, as the ledger writes times (UTC, ISO 8601, to the second)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
