"""The ledger as an outbox: a run writes its messages there before anything is sent, the sender
delivers whatever is pending (earlier runs' messages first), and the run's summary reports from it.
A server that is down loses nothing; a run that crashes after queueing sends with the next run, and
the results of a run that crashed before are written up by the next run (each result carries a mark
once an e-mail, or the decision that none is due, covers it).

Also the quiet-days check: silence is not good news, since a broken export looks like a quiet night.

`Outbox` is the store: the `notifications` table of the ledger (one file, one connection: the table
is created and upgraded with the ledger's schema) and the results' `notified` mark.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from linac_qa.checkpoints import checkpoint
from linac_qa.history.latest import Latest
from linac_qa.model import AnalysisResult
from linac_qa.notify.message import NO_REMINDERS, Outgoing, Reminders, counts, quiet_message, run_messages
from linac_qa.notify.settings import EmailSettings
from linac_qa.records.ledger import Ledger, now_text
from linac_qa.records.summary import Notification, RunSummary

LAST_ACQUISITION = "last-new-acquisition"  # when a run last found an acquisition (ISO 8601, UTC)
QUIET_WARNED = "quiet-warning-for"  # the LAST_ACQUISITION value a quiet warning was written for
INTERRUPTED = "That run was interrupted before writing its e-mail; a later run sends it."


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
class UnreportedRun:
    """An earlier run whose results no e-mail has covered: it died before writing its own."""

    run_id: str
    started: str
    results: list[AnalysisResult]


class Outbox:
    """The messages kept in the ledger, on its connection (thread-safe as the ledger is)."""

    def __init__(self, ledger: Ledger):
        self._ledger = ledger

    def queue(self, run_id: str, mails: list[NewMail], reported_runs: list[str]) -> None:
        """Keeps the messages as pending and marks every result of `reported_runs` not yet marked as
        reported by `run_id`, in one transaction: a result is in exactly one written e-mail (or in
        none, when none was due), whatever moment a crash picks. Kept before any attempt to send."""
        now = now_text()
        with self._ledger.transaction() as db:
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
        rows = self._ledger.query(
            "SELECT r.run_id, COALESCE(runs.started, MIN(r.recorded)) FROM results r"
            " LEFT JOIN runs ON runs.id = r.run_id WHERE r.notified IS NULL AND r.run_id != ?"
            " GROUP BY r.run_id ORDER BY MIN(r.id)",
            (run_id,),
        )
        return [UnreportedRun(rid, started, self._ledger.unreported_results(rid)) for rid, started in rows]

    def all(self) -> list[Mail]:
        """Every message kept, in sending order, whatever its status."""
        return self._mail("", ())

    def pending(self) -> list[Mail]:
        """Every message not known to be delivered, including those whose last attempt has no
        known outcome (`sending`: its run died waiting for the server's answer)."""
        return self._mail("WHERE status IN ('pending', 'sending')", ())

    def of_run(self, run_id: str) -> list[Mail]:
        """What a run has to report: the messages it delivered, and every message still pending."""
        return self._mail("WHERE status IN ('pending', 'sending') OR sent_run = ?", (run_id,))

    def attempt(self, mail_id: int, run_id: str) -> None:
        """Committed before the message goes to the server: a run that dies before the answer
        leaves it `sending`, an attempt of unknown outcome, instead of silently pending."""
        with self._ledger.transaction() as db:
            db.execute(
                "UPDATE notifications SET status = 'sending', attempt_started = ?, last_attempt_run = ?"
                " WHERE id = ?",
                (now_text(), run_id, mail_id),
            )

    def outcome_unknown(self, mail_id: int) -> None:
        """An attempt left `sending` by a run that died: pending again, the attempt remembered."""
        with self._ledger.transaction() as db:
            db.execute(
                "UPDATE notifications SET status = 'pending', unknown_attempt = attempt_started,"
                " attempt_started = NULL, attempts = attempts + 1 WHERE id = ? AND status = 'sending'",
                (mail_id,),
            )

    def sent(self, mail_id: int, run_id: str) -> None:
        with self._ledger.transaction() as db:
            db.execute(
                "UPDATE notifications SET status = 'sent', sent = ?, sent_run = ?, attempts = attempts + 1,"
                " last_attempt_run = ?, message = NULL, attempt_started = NULL WHERE id = ?",
                (now_text(), run_id, run_id, mail_id),
            )

    def failed(self, mail_id: int, run_id: str, error: str) -> None:
        with self._ledger.transaction() as db:
            db.execute(
                "UPDATE notifications SET status = 'pending', attempt_started = NULL,"
                " attempts = attempts + 1, last_error = ?, last_attempt_run = ? WHERE id = ?",
                (error, run_id, mail_id),
            )

    def _mail(self, where: str, params: tuple[str, ...]) -> list[Mail]:
        columns = [f.name for f in fields(Mail)]  # the table's columns, by the same names
        rows = self._ledger.query(
            f"SELECT {', '.join(columns)} FROM notifications {where} ORDER BY id", params
        )
        return [_from_row(dict(zip(columns, row, strict=True))) for row in rows]


def _from_row(row: dict[str, Any]) -> Mail:
    return Mail(**{**row, "recipients": tuple(json.loads(row["recipients"]))})


def queue_run_mail(
    ledger: Ledger,
    summary: RunSummary,
    email: EmailSettings,
    run_id: str,
    now: dt.datetime | None = None,
    run_link: str = "",
    trends: Sequence[Latest] | None = None,
    reminders: Reminders = NO_REMINDERS,
) -> list[Outgoing]:
    """Note this run's activity; when e-mail is on, keep its messages in the ledger as pending,
    first those of earlier runs that died after recording results and before writing their own
    e-mail. Every result is marked as reported in the same transaction, messages or not.
    `run_link`, `trends` (its metrics against the record) and `reminders` (overdue tests, results
    pending review too long): for this run's own messages."""
    now = now or dt.datetime.now(dt.UTC)
    checkpoint("queue-email")  # crash-safety tests: the results are recorded, their e-mail is not
    note_activity(ledger, summary, now)
    outbox = Outbox(ledger)
    earlier = outbox.unreported_runs(run_id)
    outgoing: list[Outgoing] = []
    if email.enabled:
        unit = unit_name(ledger, summary)
        for run in earlier:
            outgoing += run_messages(_interrupted(run, summary), email, unit, note=INTERRUPTED)
        outgoing += run_messages(summary, email, unit, run_link=run_link, trends=trends, reminders=reminders)
        last = quiet_since(ledger, email.quiet_days, now)
        if last is not None:
            outgoing.append(quiet_message(email, unit, summary.directory, last, now))
    outbox.queue(run_id, [kept(m) for m in outgoing], [run_id, *(r.run_id for r in earlier)])
    return outgoing


def kept(m: Outgoing) -> NewMail:
    """A message as the ledger keeps it until a server accepts it."""
    return NewMail(
        kind=m.kind,
        subject=m.subject,
        sender=m.sender,
        recipients=list(m.recipients),
        message=m.as_bytes(),
        message_id=m.message["Message-ID"],
    )


def _interrupted(run: UnreportedRun, current: RunSummary) -> RunSummary:
    started = dt.datetime.fromisoformat(run.started)
    return RunSummary(
        directory=current.directory, unit=current.unit, started=started, finished=started, results=run.results
    )


def note_activity(ledger: Ledger, summary: RunSummary, now: dt.datetime) -> None:
    """Any analysed acquisition (passed, failed or error) shows the export works; ignored non-QA
    files do not. A ledger without the record yet starts from its newest result, else from now."""
    if any(r.analysis is not None for r in summary.results):
        ledger.set_state(LAST_ACQUISITION, now.isoformat())
    elif ledger.get_state(LAST_ACQUISITION) is None:
        ledger.set_state(LAST_ACQUISITION, ledger.last_acquisition_recorded() or now.isoformat())


def quiet_since(ledger: Ledger, quiet_days: float, now: dt.datetime) -> dt.datetime | None:
    """The time of the last acquisition when a quiet warning is due: once per quiet spell, not
    every night after (the spell is known by its last acquisition's time)."""
    last_text = ledger.get_state(LAST_ACQUISITION)
    if quiet_days <= 0 or last_text is None or ledger.get_state(QUIET_WARNED) == last_text:
        return None
    last = dt.datetime.fromisoformat(last_text)
    if now - last < dt.timedelta(days=quiet_days):
        return None
    ledger.set_state(QUIET_WARNED, last_text)
    return last


def unit_name(ledger: Ledger, summary: RunSummary) -> str:
    """For the subject: the run's unit, else the last one the ledger saw, else the folder's name."""
    return summary.unit or ledger.last_unit() or Path(summary.directory).name


def mail_outcome(
    ledger: Ledger, run_id: str, email: EmailSettings, summary: RunSummary, failure: str | None = None
) -> list[Notification]:
    """The summary's `notifications`: one entry per message this run delivered or still holds.
    `failure`: why the sending step itself failed, if it did (for messages it never got to)."""
    notes = [_note(mail, run_id, email, failure) for mail in Outbox(ledger).of_run(run_id)]
    if notes:
        return notes
    if not email.enabled:
        return [Notification(channel="email", status="none", detail=email.off_reason)]
    n = counts(summary.results)
    return [
        Notification(
            channel="email",
            status="none",
            detail=f"nothing to send (email.send: {email.send}; {n['failed']} failed, {n['errors']} errors,"
            f" {n['passed']} passed" + (f", {n['not_judged']} not judged)" if n["not_judged"] else ")"),
        )
    ]


def _note(mail: Mail, run_id: str, email: EmailSettings, failure: str | None) -> Notification:
    what = f"{mail.kind} '{mail.subject}'"
    if mail.run_id != run_id:
        what += f" (written by the run of {mail.created})"
    if mail.status == "sent":
        detail = f"{what} sent to {', '.join(mail.recipients)}"
        if mail.unknown_attempt:
            detail += (
                f"; possibly delivered twice: the run that handed it to the server at"
                f" {mail.unknown_attempt} died before the answer, so it was sent again with the same"
                f" Message-ID {mail.message_id}"
            )
        return Notification(channel="email", status="sent", detail=detail)
    if mail.status == "sending":
        began = dt.datetime.fromisoformat(mail.attempt_started or mail.created)
        return Notification(
            channel="email",
            status="pending",
            detail=f"{what}: outcome unknown (the run that handed it to the server at {began.isoformat()}"
            " died before the answer; it may have been delivered); sent again, with the same Message-ID,"
            f" by the first run from {(began + email.resend_unknown_after).isoformat(timespec='seconds')}"
            f" (email.resend-unknown-after-minutes: {email.resend_unknown_after_minutes:g})",
        )
    if mail.last_attempt_run == run_id:
        return Notification(
            channel="email",
            status="failed",
            detail=f"{what} not sent ({mail.attempts} attempt(s)): {mail.last_error}; kept in the ledger,"
            " sent with the next run",
        )
    why = email.off_reason or failure or "not attempted"
    return Notification(channel="email", status="pending", detail=f"{what} kept in the ledger: {why}")
