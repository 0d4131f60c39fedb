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
    recorded TEXT NOT NULL
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
    recorded TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT,
    summary TEXT
);
"""


@dataclass(frozen=True)
class Known:
    size: int
    mtime_ns: int
    sha256: str | None


@dataclass(frozen=True)
class FileStamp:
    path: str
    size: int
    mtime_ns: int
    sha256: str | None = None


class Ledger:
    """Thread-safe: results arrive on the worker pool's callback thread."""

    def __init__(self, db_path: Path):
        self.path = db_path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(db_path, check_same_thread=False, timeout=30)
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

    def known(self) -> dict[str, Known]:
        with self._lock:
            rows = self._db.execute("SELECT path, size, mtime_ns, sha256 FROM files").fetchall()
        return {p: Known(s, m, h) for p, s, m, h in rows}

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
        config_hash: str,
        pylinac_version: str,
    ) -> None:
        """The result and the state of every file it used, in one transaction: a crash leaves
        either both or neither, so the next run redoes exactly what was not recorded."""
        now = _now()
        with self._transaction() as db:
            cur = db.execute(
                "INSERT INTO results (run_id, analysis, model, status, reason, files, outputs, metrics, unit,"
                " acquired, recorded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                ),
            )
            db.executemany(
                "INSERT INTO files (path, size, mtime_ns, sha256, status, analysis, result_id, config_hash,"
                " pylinac_version, recorded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns,"
                " sha256=excluded.sha256, status=excluded.status, analysis=excluded.analysis,"
                " result_id=excluded.result_id, config_hash=excluded.config_hash,"
                " pylinac_version=excluded.pylinac_version, recorded=excluded.recorded",
                [
                    (
                        s.path,
                        s.size,
                        s.mtime_ns,
                        s.sha256,
                        result.status.value,
                        result.analysis,
                        cur.lastrowid,
                        config_hash,
                        pylinac_version,
                        now,
                    )
                    for s in stamps
                ],
            )

    def start_run(self, run_id: str, started: dt.datetime) -> None:
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

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._db:
            yield self._db


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
