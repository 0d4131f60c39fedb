"""The ledger as an outbox: a run writes its messages there before anything is sent, the sender
delivers whatever is pending (earlier runs' messages first), and the run's summary reports from it.
A server that is down loses nothing; a run that crashes after queueing sends with the next run, and
the results of a run that crashed before are written up by the next run (each result carries a mark
once an e-mail, or the decision that none is due, covers it).

Also the quiet-days check: silence is not good news, since a broken export looks like a quiet night.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from linac_qa.checkpoints import checkpoint
from linac_qa.notify.message import Outgoing, counts, quiet_message, run_messages
from linac_qa.notify.settings import EmailSettings
from linac_qa.records.ledger import Ledger, Mail, NewMail, UnreportedRun
from linac_qa.records.summary import Notification, RunSummary

LAST_ACQUISITION = "last-new-acquisition"  # when a run last found an acquisition (ISO 8601, UTC)
QUIET_WARNED = "quiet-warning-for"  # the LAST_ACQUISITION value a quiet warning was written for
INTERRUPTED = "That run was interrupted before writing its e-mail; a later run sends it."


def queue_run_mail(
    ledger: Ledger, summary: RunSummary, email: EmailSettings, run_id: str, now: dt.datetime | None = None
) -> list[Outgoing]:
    """Note this run's activity; when e-mail is on, keep its messages in the ledger as pending,
    first those of earlier runs that died after recording results and before writing their own
    e-mail. Every result is marked as reported in the same transaction, messages or not."""
    now = now or dt.datetime.now(dt.UTC)
    checkpoint("queue-email")  # crash-safety tests: the results are recorded, their e-mail is not
    note_activity(ledger, summary, now)
    earlier = ledger.unreported_runs(run_id)
    outgoing: list[Outgoing] = []
    if email.enabled:
        unit = unit_name(ledger, summary)
        for run in earlier:
            outgoing += run_messages(_interrupted(run, summary), email, unit, note=INTERRUPTED)
        outgoing += run_messages(summary, email, unit)
        last = quiet_since(ledger, email.quiet_days, now)
        if last is not None:
            outgoing.append(quiet_message(email, unit, summary.directory, last, now))
    kept = [
        NewMail(
            kind=m.kind,
            subject=m.subject,
            sender=m.sender,
            recipients=list(m.recipients),
            message=m.as_bytes(),
            message_id=m.message["Message-ID"],
        )
        for m in outgoing
    ]
    ledger.queue_mail(run_id, kept, [run_id, *(r.run_id for r in earlier)])
    return outgoing


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
    notes = [_note(mail, run_id, email, failure) for mail in ledger.mail_of_run(run_id)]
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
