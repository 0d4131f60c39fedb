"""The monthly reports of a directory, made and e-mailed: what `python -m flows.report` and the
`monthly-report` flow both do. The e-mail goes through the ledger's outbox like a run's: kept first,
then sent while no run holds the directory (a run that does sends it with its own)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from linac_qa.config import Settings
from linac_qa.notify.message import report_message
from linac_qa.notify.outbox import Outbox, kept
from linac_qa.notify.send import Log, Server, deliver_pending, send_pending
from linac_qa.records.ledger import Ledger
from linac_qa.review.due import schedules_of
from linac_qa.review.monthly import MonthReport, gather, summary_line, write_report
from linac_qa.review.trail import Trail
from linac_qa.run import DirectoryBusy, directory_lock


@dataclass(frozen=True)
class Published:
    report: MonthReport
    files: list[Path]


def machines_of(directory: Path, settings: Settings, machine: str | None) -> list[str]:
    """The one asked for, else the configured unit, else every machine the trail has results of."""
    if machine or settings.general.unit:
        return [machine or settings.general.unit or ""]
    trail = Trail(directory)
    try:
        return sorted({e.machine for e in trail.entries()})
    finally:
        trail.close()


def publish(
    directory: Path, settings: Settings, month: str, machines: list[str], now: dt.datetime, tz: dt.tzinfo
) -> list[Published]:
    """Each machine's PDF and QuAAC export of the month, written; nothing mailed yet."""
    schedules = schedules_of(settings.analyses)
    done = []
    for machine in machines:
        report = gather(directory, machine, month, schedules, now, tz)
        done.append(Published(report, write_report(directory, report)))
    return done


def mail(
    directory: Path,
    settings: Settings,
    published: list[Published],
    run_id: str,
    log: Log,
    server: Server | None = None,
) -> int:
    """Each report kept in the outbox, then sent unless a run holds the directory; returns how many
    were sent now. Raises MailError when the server would not take them (they stay kept). `server`:
    instead of the configured block's (a test's own SMTP server)."""
    email = settings.email
    if not email.enabled or not published:
        return 0
    ledger = Ledger.open(directory)
    try:
        messages = [
            report_message(email, p.report.machine, p.report.month, summary_line(p.report), p.files)
            for p in published
        ]
        Outbox(ledger).queue(run_id, [kept(m) for m in messages], [])
        try:
            with directory_lock(directory):
                if server is not None:
                    return deliver_pending(ledger, server, run_id, log, email.resend_unknown_after)
                return send_pending(ledger, email, run_id, log)
        except DirectoryBusy:
            log.warning("%s is being processed: its run will send the report e-mail", directory)
            return 0
    finally:
        ledger.close()
