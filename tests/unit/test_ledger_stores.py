"""The stores on the ledger's one connection: the outbox (`notify.outbox.Outbox`) and the source
copies (`intake.sources.SourceCopies`) read and write the same file as the results, and an outbox
written by an earlier release keeps working once a run has upgraded the ledger."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from linac_qa.intake.sources import SourceCopies
from linac_qa.notify.outbox import NewMail, Outbox
from linac_qa.records.ledger import FileStamp, Known, Ledger

# The notifications table as the first releases made it: before message_id, attempt_started and
# unknown_attempt (ADDED_COLUMNS).
FIRST_NOTIFICATIONS = (
    "CREATE TABLE notifications (id INTEGER PRIMARY KEY, created TEXT NOT NULL, run_id TEXT,"
    " kind TEXT NOT NULL, subject TEXT NOT NULL, sender TEXT NOT NULL, recipients TEXT NOT NULL,"
    " message BLOB, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
    " last_attempt_run TEXT, sent TEXT, sent_run TEXT)"
)


def test_an_outbox_from_an_earlier_release_is_read_and_written_after_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(FIRST_NOTIFICATIONS)
        db.execute(
            "INSERT INTO notifications (created, run_id, kind, subject, sender, recipients, message, status)"
            " VALUES ('2024-03-01T02:00:00+00:00', 'old', 'digest', 'Old', 'qa@x.test', '[\"p@x.test\"]',"
            " x'6d', 'pending')"
        )
    db.close()
    ledger = Ledger(path)
    try:
        ledger.start_run("new", dt.datetime.now(dt.UTC))
        outbox = Outbox(ledger)
        outbox.queue("new", [NewMail("digest", "New", "qa@x.test", ["p@x.test"], b"n", "<2@x>")], ["new"])
        old, new = outbox.pending()
        assert (old.subject, old.message_id, old.recipients) == ("Old", None, ("p@x.test",))
        assert (new.subject, new.message_id, new.run_id) == ("New", "<2@x>", "new")
        outbox.attempt(old.id, "new")
        outbox.sent(old.id, "new")
        assert [(m.subject, m.status, m.message) for m in outbox.of_run("new")] == [
            ("Old", "sent", None),
            ("New", "pending", b"n"),
        ]
    finally:
        ledger.close()


def test_source_copies_are_kept_in_the_ledger_file_per_source(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    try:
        copies = SourceCopies(ledger)
        copies.record("/tds", FileStamp("a.bin", 1, 10, "0" * 64), "tds/a.bin")
        copies.record("/tds", FileStamp("a.bin", 2, 20, "1" * 64), "tds/a_copy2.bin")  # changed since
        copies.record("/dyn", FileStamp("a.bin", 3, 30, "2" * 64), "dyn/a.bin")
    finally:
        ledger.close()
    observer = Ledger(path, read_only=True)
    try:
        assert SourceCopies(observer).copied("/tds") == {"a.bin": Known(2, 20, "1" * 64)}
        assert SourceCopies(observer).copied("/elsewhere") == {}
    finally:
        observer.close()
