"""The SQLite files of the history, in the processed directory's state folder: opened the same way
(one writer at a time, WAL so that readers never wait), each module owning its own tables."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from linac_qa.records.ledger import STATE_DIR


def connect(directory: Path, name: str, schema: str) -> sqlite3.Connection:
    state = directory / STATE_DIR
    state.mkdir(exist_ok=True)
    path = state / name
    if path.is_symlink():  # the run writes only inside its state folder, never through a link
        raise OSError(f"{path} is a symbolic link: refusing to write through it")
    # A run records from its pool's callback threads, one at a time (History.lock).
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(schema)
    return conn


def to_text(when: dt.datetime) -> str:
    """UTC, fixed width: sorts as text in time order."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def from_text(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)
