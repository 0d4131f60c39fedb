"""E-mail gating (issue 17, acceptance 1: no e-mail on a night with nothing to say): with
`send: failures` the digest goes out when a result failed, a result has waited for review longer
than `email.pending-days`, or a scheduled test is overdue, and not otherwise; through a real SMTP
server (aiosmtpd), the trail written straight, the clock frozen."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from linac_qa.config import load_settings
from linac_qa.history.store import from_text, to_text
from linac_qa.model import AnalysisResult, Status
from linac_qa.notify.message import Reminders, run_messages
from linac_qa.notify.outbox import queue_run_mail
from linac_qa.notify.send import deliver_pending
from linac_qa.records.ledger import Ledger
from linac_qa.records.summary import RunSummary
from linac_qa.review import queue
from linac_qa.review.digest import reminders
from linac_qa.review.trail import Decision, Entry, Review, Trail
from tests.mailbox import RECIPIENTS, SENDER, Log, Mailbox, parts, running, smtp_to

CONFIG = f"""general:
  unit: TrueBeam1
email:
  credentials-block: test
  from: {SENDER}
  recipients: [{RECIPIENTS[0]}]
  pending-days: 7
picket-fence:
  schedule: weekly
"""


def entry(
    day: int, status: str = "passed", level: str | None = "ok", analysis: str = "picket-fence"
) -> Entry:
    when = to_text(dt.datetime(2024, 3, day, 7, 30, tzinfo=dt.UTC))
    return Entry(
        f"{analysis}/{day}_analysis.json", "TrueBeam1", analysis, "", when, status, level, None, True, "r",
        None, {}, when,
    )  # fmt: skip


def recorded(trail: Trail, e: Entry) -> None:
    """As the run records it: a clean result is auto-reviewed then."""
    queue.record(trail, e, from_text(e.recorded))


def night(directory: Path, ledger: Ledger, day: int, results: list[AnalysisResult]) -> list[str]:
    """One nightly run's e-mail, sent to a fresh mailbox: the subjects it received."""
    now = dt.datetime(2024, 3, day, 2, 0, tzinfo=dt.UTC)
    settings = load_settings(text=CONFIG)
    summary = RunSummary(
        directory=str(directory), unit="TrueBeam1", started=now, finished=now, results=results
    )
    queue_run_mail(
        ledger, summary, settings.email, f"night-{day}", now, reminders=reminders(directory, settings, now)
    )
    with running(Mailbox()) as box:
        deliver_pending(ledger, smtp_to(box.port), f"night-{day}", Log())
    assert box.connections == (1 if box.received else 0)  # a quiet night opens no connection at all
    texts = [parts(r.message)[0] for r in box.received]
    return [f"{r.message['Subject']}\n{t}" for r, t in zip(box.received, texts, strict=True)]


def test_the_digest_goes_out_only_on_a_night_with_something_to_say(tmp_path: Path) -> None:
    trail = Trail(tmp_path)
    recorded(trail, entry(4))  # picket fence done on Monday the 4th: due the 11th
    tolerance = entry(5, "passed", "tolerance", "field-analysis")
    recorded(trail, tolerance)  # needs review: pending from the 5th
    passed = AnalysisResult(
        analysis="field-analysis",
        model="FieldAnalysis",
        files=["FA.dcm"],
        status=Status.PASSED,
        reason="ok",
        unit="TrueBeam1",
        judged=True,
    )
    ledger = Ledger.open(tmp_path)
    assert night(tmp_path, ledger, 6, [passed]) == []  # passes, nothing overdue, pending for a day only

    [pending] = night(tmp_path, ledger, 13, [passed])  # 8 days pending; picket fence 2 days overdue
    assert "Pending review for more than 7 days" in pending
    assert (
        "TrueBeam1: field analysis of 2024-03-05 07:30 (passed, tolerance level), waiting 7 days" in pending
    )
    assert "TrueBeam1: picket fence overdue by 2 days (due 2024-03-11, last 2024-03-04)" in pending

    trail.append(
        Review(entry(5).result_id.replace("picket-fence", "field-analysis"), Decision.APPROVE, "Dr A", "x")
    )
    recorded(trail, entry(12))  # the weekly test done after all
    assert night(tmp_path, ledger, 14, [passed]) == []  # signed and done: nothing to say

    failed = passed.model_copy(
        update={"status": Status.FAILED, "reason": "flatness 3.9 % beyond the action level"}
    )
    [failure] = night(tmp_path, ledger, 15, [failed])
    assert "Overdue" not in failure and "flatness 3.9 %" in failure
    assert night(tmp_path, ledger, 20, []) != []  # the 19th passed without the weekly test: overdue again
    trail.close()
    ledger.close()


def test_without_the_digest_reminders_come_in_a_message_of_their_own(tmp_path: Path) -> None:
    now = dt.datetime(2024, 3, 13, 2, 0, tzinfo=dt.UTC)
    email = load_settings(text=CONFIG.replace("  pending-days: 7\n", "  digest: false\n")).email
    summary = RunSummary(directory=str(tmp_path), unit="TrueBeam1", started=now, finished=now, results=[])
    due = Reminders(overdue=("TrueBeam1: picket fence overdue by 2 days",))
    [alone] = run_messages(summary, email, "TrueBeam1", reminders=due)
    assert alone.kind == "reminder" and alone.subject == "TrueBeam1 QA: 1 overdue, 0 pending review"
    assert "picket fence overdue by 2 days" in parts(alone.message)[0]
    assert run_messages(summary, email, "TrueBeam1") == []
