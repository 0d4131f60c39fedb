"""The ledger: what was looked at, when, with what verdict. SQLite under `DIR/.linac-qa/`.

It is the source of truth for "already done" (not Prefect's cache, which is opaque and
per-Python-version), and the results store for history and reports.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
class Mail:
    """A notification in the ledger: pending until a server accepted it."""

    id: int
    created: str
    run_id: str | None
    kind: str
    subject: str
    sender: str
    recipients: tuple[str, ...]
    message: bytes | None
    status: str
    attempts: int
    last_error: str | None
    last_attempt_run: str | None
    sent_run: str | None
    message_id: str | None = None
    attempt_started: str | None = None
    unknown_attempt: str | None = None


@dataclass(frozen=True)
class NewMail:
    """A message to keep in the ledger as pending."""

    kind: str
    subject: str
    sender: str
    recipients: list[str]
    message: bytes
    message_id: str | None


@dataclass(frozen=True)
class UnreportedRun:
    """An earlier run whose results no e-mail has covered: it died before writing its own."""

    run_id: str
    started: str
    results: list[AnalysisResult]


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
        with self._transaction() as db:
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
        with self._lock:
            rows = self._db.execute(
                "SELECT path, size, mtime_ns, sha256, status, linac_qa_version, pylinac_version, config_hash"
                " FROM files"
            ).fetchall()
        return {p: Known(s, m, h, status, Provenance(*made)) for p, s, m, h, status, *made in rows}

    def touch(self, stamp: FileStamp) -> None:
        """A file that changed its size or mtime but not its content stays done."""
        with self._transaction() as db:
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
        now = _now()
        with self._transaction() as db:
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
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs (id, started) VALUES (?, ?)", (run_id, started.isoformat())
            )

    def finish_run(self, run_id: str, finished: dt.datetime, summary: dict[str, object]) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET finished = ?, summary = ? WHERE id = ?",
                (finished.isoformat(), json.dumps(summary, default=str), run_id),
            )

    def run_counts(self) -> tuple[int, int]:
        """(runs started, runs finished)."""
        with self._lock:
            started, finished = self._db.execute("SELECT COUNT(*), COUNT(finished) FROM runs").fetchone()
        return int(started), int(finished)

    # -------------------------------------------------------------- notifications
    def queue_mail(self, run_id: str, mails: list[NewMail], reported_runs: list[str]) -> None:
        """Keeps the messages as pending and marks every result of `reported_runs` not yet marked as
        reported by `run_id`, in one transaction: a result is in exactly one written e-mail (or in
        none, when none was due), whatever moment a crash picks. Kept before any attempt to send."""
        now = _now()
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO notifications (created, run_id, kind, subject, sender, recipients, message,"
                " status, message_id) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                [
                    (
                        now,
                        run_id,
                        m.kind,
                        m.subject,
                        m.sender,
                        json.dumps(m.recipients),
                        m.message,
                        m.message_id,
                    )
                    for m in mails
                ],
            )
            db.executemany(
                "UPDATE results SET notified = ? WHERE notified IS NULL AND run_id = ?",
                [(run_id, reported) for reported in reported_runs],
            )

    def unreported_runs(self, run_id: str) -> list[UnreportedRun]:
        """Earlier runs that recorded results and died before writing their e-mail, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT r.run_id, COALESCE(runs.started, MIN(r.recorded)) FROM results r"
                " LEFT JOIN runs ON runs.id = r.run_id WHERE r.notified IS NULL AND r.run_id != ?"
                " GROUP BY r.run_id ORDER BY MIN(r.id)",
                (run_id,),
            ).fetchall()
        return [UnreportedRun(rid, started, self._unreported_results(rid)) for rid, started in rows]

    def results(self) -> list[AnalysisResult]:
        """Every result recorded, oldest first."""
        return self._results("", ())

    def _unreported_results(self, run_id: str) -> list[AnalysisResult]:
        return self._results("WHERE run_id = ? AND notified IS NULL", (run_id,))

    def _results(self, where: str, params: tuple[str, ...]) -> list[AnalysisResult]:
        with self._lock:
            rows = self._db.execute(
                "SELECT analysis, model, status, reason, files, outputs, metrics, unit, acquired, judged"
                f" FROM results {where} ORDER BY id",
                params,
            ).fetchall()
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

    def all_mail(self) -> list[Mail]:
        """Every message kept, in sending order, whatever its status."""
        return self._mail("", ())

    def pending_mail(self) -> list[Mail]:
        """Every message not known to be delivered, including those whose last attempt has no
        known outcome (`sending`: its run died waiting for the server's answer)."""
        return self._mail("WHERE status IN ('pending', 'sending')", ())

    def mail_of_run(self, run_id: str) -> list[Mail]:
        """What a run has to report: the messages it delivered, and every message still pending."""
        return self._mail("WHERE status IN ('pending', 'sending') OR sent_run = ?", (run_id,))

    def mail_attempt(self, mail_id: int, run_id: str) -> None:
        """Committed before the message goes to the server: a run that dies before the answer
        leaves it `sending`, an attempt of unknown outcome, instead of silently pending."""
        with self._transaction() as db:
            db.execute(
                "UPDATE notifications SET status = 'sending', attempt_started = ?, last_attempt_run = ?"
                " WHERE id = ?",
                (_now(), run_id, mail_id),
            )

    def mail_outcome_unknown(self, mail_id: int) -> None:
        """An attempt left `sending` by a run that died: pending again, the attempt remembered."""
        with self._transaction() as db:
            db.execute(
                "UPDATE notifications SET status = 'pending', unknown_attempt = attempt_started,"
                " attempt_started = NULL, attempts = attempts + 1 WHERE id = ? AND status = 'sending'",
                (mail_id,),
            )

    def mail_sent(self, mail_id: int, run_id: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE notifications SET status = 'sent', sent = ?, sent_run = ?, attempts = attempts + 1,"
                " last_attempt_run = ?, message = NULL, attempt_started = NULL WHERE id = ?",
                (_now(), run_id, run_id, mail_id),
            )

    def mail_failed(self, mail_id: int, run_id: str, error: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE notifications SET status = 'pending', attempt_started = NULL,"
                " attempts = attempts + 1, last_error = ?, last_attempt_run = ? WHERE id = ?",
                (error, run_id, mail_id),
            )

    def _mail(self, where: str, params: tuple[str, ...]) -> list[Mail]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, created, run_id, kind, subject, sender, recipients, message, status, attempts,"
                " last_error, last_attempt_run, sent_run, message_id, attempt_started, unknown_attempt"
                f" FROM notifications {where} ORDER BY id",
                params,
            ).fetchall()
        return [
            Mail(
                id=row[0],
                created=row[1],
                run_id=row[2],
                kind=row[3],
                subject=row[4],
                sender=row[5],
                recipients=tuple(json.loads(row[6])),
                message=row[7],
                status=row[8],
                attempts=row[9],
                last_error=row[10],
                last_attempt_run=row[11],
                sent_run=row[12],
                message_id=row[13],
                attempt_started=row[14],
                unknown_attempt=row[15],
            )
            for row in rows
        ]

    # -------------------------------------------------------------- copies from sources
    def copied(self, source: str) -> dict[str, Known]:
        with self._lock:
            rows = self._db.execute(
                "SELECT path, size, mtime_ns, sha256 FROM copies WHERE source = ?", (source,)
            ).fetchall()
        return {p: Known(s, m, h) for p, s, m, h in rows}

    def record_copy(self, source: str, stamp: FileStamp, copy: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO copies (source, path, size, mtime_ns, sha256, copy, copied)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(source, path) DO UPDATE SET"
                " size = excluded.size, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256,"
                " copy = excluded.copy, copied = excluded.copied",
                (source, stamp.path, stamp.size, stamp.mtime_ns, stamp.sha256, copy, _now()),
            )

    # -------------------------------------------------------------- small state
    def get_state(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO state (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def last_acquisition_recorded(self) -> str | None:
        """When the newest result of an analysis (not an ignored non-QA file) was recorded."""
        with self._lock:
            row = self._db.execute("SELECT MAX(recorded) FROM results WHERE analysis IS NOT NULL").fetchone()
        return row[0] if row else None

    def last_unit(self) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT unit FROM results WHERE unit IS NOT NULL ORDER BY id DESC LIMIT 1"
            ).fetchone()
        return row[0] if row else None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._db:
            yield self._db


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
