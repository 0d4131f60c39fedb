"""Pass/fail e-mail: messages built with the standard library, kept in the ledger until a server
takes them, sent to a real SMTP server (aiosmtpd). Through a prefect-email block on a real Prefect
server: tests/e2e/test_email.py.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from linac_qa.config import ConfigError, load_settings
from linac_qa.model import AnalysisResult, Status
from linac_qa.notify.message import run_messages
from linac_qa.notify.outbox import LAST_ACQUISITION, Outbox, queue_run_mail
from linac_qa.notify.send import MailError, deliver_pending, describe_error
from linac_qa.notify.settings import EmailSettings
from linac_qa.records.ledger import Ledger
from linac_qa.records.summary import RunSummary
from tests.conftest import free_port
from tests.mailbox import (
    GOOD_PASSWORD,
    NON_ASCII_PF,
    RECIPIENTS,
    SENDER,
    SUBJECT,
    WRONG_PASSWORD,
    Log,
    Mailbox,
    addresses,
    parts,
    running,
    smtp_to,
)

# --------------------------------------------------------------------------- a real SMTP server


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with running(Mailbox()) as box:
        yield box


# --------------------------------------------------------------------------- messages (no Prefect)


def _settings(**kw: Any) -> EmailSettings:
    base: dict[str, Any] = {
        "credentials-block": "test",
        "from": SENDER,
        "recipients": RECIPIENTS,
        "subject": SUBJECT,
    }
    return EmailSettings.model_validate({**base, **kw})


def _result(
    status: Status, name: str, root: Path, *, pdf_bytes: bytes | None = None, **kw: Any
) -> AnalysisResult:
    outputs = []
    if pdf_bytes is not None:
        pdf = root / f"{Path(name).stem}_analysis.pdf"
        pdf.write_bytes(pdf_bytes)
        outputs = [pdf.name, f"{Path(name).stem}_analysis.json"]
    return AnalysisResult(
        analysis=kw.pop("analysis", "picket-fence"),
        model=kw.pop("model", "PicketFence"),
        files=[name],
        status=status,
        reason=kw.pop("reason", f"{status.value} for a reason: 1.23 mm > 0.50 mm"),
        outputs=outputs,
        unit="TrueBeam1",
        judged=kw.pop("judged", status in (Status.PASSED, Status.FAILED)),
        **kw,
    )


def _summary(root: Path, results: list[AnalysisResult]) -> RunSummary:
    now = dt.datetime(2024, 3, 5, 2, 0, tzinfo=dt.UTC)
    return RunSummary(directory=str(root), unit="TrueBeam1", started=now, finished=now, results=results)


def _parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def test_digest_lists_failures_first_and_attaches_only_failing_reports(tmp_path: Path) -> None:
    failing_pdf = b"%PDF-1.4 failing \x00\xff" * 100
    results = [
        _result(Status.PASSED, "RI.QA.PF_A.dcm", tmp_path, pdf_bytes=b"%PDF-1.4 passing"),
        _result(Status.ERROR, "RI.QA.PF_truncated.dcm", tmp_path, reason="truncated: 12000 bytes missing"),
        _result(Status.FAILED, NON_ASCII_PF, tmp_path, pdf_bytes=failing_pdf),
        _result(Status.IGNORED, "team photo.png", tmp_path, analysis=None, model=None, reason="not QA"),
    ]
    [mail] = run_messages(_summary(tmp_path, results), _settings(), "TrueBeam1")
    message = _parse(mail.as_bytes())
    assert message["Subject"] == "TrueBeam1 QA: 1 failed, 1 errors, 1 passed, 1 ignored"
    assert addresses(message, "From") == ["qa-robot@clinic.test"]
    assert addresses(message, "To") == ["physics@clinic.test", "grosse@clinic.test"]
    assert message["To"].addresses[1].display_name == "Dr. Größe"
    assert message["Message-ID"] and message["Date"]
    text, page, attachments = parts(message)
    assert attachments == {"RI.QA.PF_Größe Ω_analysis.pdf": failing_pdf}  # the real name, intact
    assert text.index("FAILED") < text.index("ERROR")  # failures first
    assert "RI.QA.PF_A.dcm" not in text and "Not listed: 1 passed and 1 ignored" in text  # send: failures
    assert "RI.QA.PF_Größe Ω_analysis.pdf (attached)" in text and "1.23 mm &gt; 0.50 mm" in page
    assert "<table" in page and "12000 bytes missing" in page


def test_send_all_lists_passed_but_never_attaches_a_passing_report(tmp_path: Path) -> None:
    results = [
        _result(Status.PASSED, "RI.QA.PF_A.dcm", tmp_path, pdf_bytes=b"%PDF passing"),
        _result(Status.FAILED, "RI.QA.PF_B.dcm", tmp_path, pdf_bytes=b"%PDF failing"),
    ]
    [mail] = run_messages(_summary(tmp_path, results), _settings(send="all"), "TrueBeam1")
    text, _, attachments = parts(_parse(mail.as_bytes()))
    assert set(attachments) == {"RI.QA.PF_B_analysis.pdf"}
    assert text.index("RI.QA.PF_B.dcm") < text.index("RI.QA.PF_A.dcm")


def test_results_not_judged_are_listed_under_their_own_heading_never_as_passes(tmp_path: Path) -> None:
    not_judged = _result(
        Status.PASSED,
        "RI.QA.QC3.dcm",
        tmp_path,
        analysis="planar-imaging",
        model="StandardImagingQC3",
        reason="not judged: no criteria configured (planar-imaging.criteria)",
        judged=False,
    )
    passed = _result(Status.PASSED, "RI.QA.PF_A.dcm", tmp_path)
    failed = _result(Status.FAILED, "RI.QA.PF_B.dcm", tmp_path)
    subject = "{unit}: {failed} failed, {passed} passed, {not_judged} not judged"
    for send in ("failures", "all"):
        [mail] = run_messages(
            _summary(tmp_path, [not_judged, passed, failed]),
            _settings(send=send, subject=subject),
            "TrueBeam1",
        )
        assert mail.subject == "TrueBeam1: 1 failed, 1 passed, 1 not judged"
        text, page, _ = parts(_parse(mail.as_bytes()))
        heading = text.index("Not judged (analysed, but no pass criterion was applied")
        assert text.index("RI.QA.PF_B.dcm") < heading < text.index("NOT JUDGED planar-imaging  RI.QA.QC3.dcm")
        assert "1 passed, 1 not judged, 0 ignored" in text
        assert "<h3>Not judged" in page and page.index("<h3>Not judged") < page.index("RI.QA.QC3.dcm")
        if send == "all":  # the pass is listed, above the heading; the result not judged is not among them
            assert text.index("passed  picket-fence  RI.QA.PF_A.dcm") < heading
        else:
            assert "RI.QA.PF_A.dcm" not in text and "Not listed: 1 passed." in text
    # Not a failure: alone it sends nothing unless every result is wanted.
    alone = _summary(tmp_path, [not_judged])
    assert run_messages(alone, _settings(), "TrueBeam1") == []
    [mail] = run_messages(alone, _settings(send="all", digest=False), "TrueBeam1")
    text, _, _ = parts(_parse(mail.as_bytes()))
    assert "Not judged (" in text and "NOT JUDGED" in text and "\npassed" not in text


def test_reports_over_the_size_limit_are_listed_with_their_path(tmp_path: Path) -> None:
    results = [
        _result(Status.FAILED, "RI.QA.PF_B.dcm", tmp_path, pdf_bytes=b"x" * 600_000),
        _result(Status.FAILED, "RI.QA.Starshot_B.dcm", tmp_path, pdf_bytes=b"y" * 500_000),
    ]
    [mail] = run_messages(_summary(tmp_path, results), _settings(**{"attachments-max-mb": 1}), "TrueBeam1")
    text, page, attachments = parts(_parse(mail.as_bytes()))
    assert list(attachments) == ["RI.QA.PF_B_analysis.pdf"]
    left_out = str(tmp_path / "RI.QA.Starshot_B_analysis.pdf")
    assert "over the 1 MB limit" in text and left_out in text and left_out in page


def test_logs_are_named_by_type_and_date_never_by_file_name(tmp_path: Path) -> None:
    log = _result(
        Status.FAILED,
        "logs/DOE^JOHN_1234567_Plan1_Field2_20240304070000.bin",
        tmp_path,
        analysis="machine-logs",
        model="TrajectoryLog",
        acquired=dt.datetime(2024, 3, 4, 7, 0),
        reason="gamma 1%/1mm pass rate 91.2 % < 95.0 %",
    )
    [mail] = run_messages(_summary(tmp_path, [log]), _settings(digest=False), "TrueBeam1")
    raw = mail.as_bytes().decode("ascii")
    text, page, _ = parts(_parse(mail.as_bytes()))
    for identifier in ("DOE", "JOHN", "1234567", "Plan1"):
        assert identifier not in text and identifier not in page and identifier not in raw
    assert "TrajectoryLog 2024-03-04 07:00" in text and "TrajectoryLog 2024-03-04 07:00" in mail.subject


def test_per_analysis_mode_sends_one_message_per_failure_or_error(tmp_path: Path) -> None:
    results = [
        _result(Status.PASSED, "RI.QA.PF_A.dcm", tmp_path, pdf_bytes=b"%PDF"),
        _result(Status.FAILED, "RI.QA.PF_B.dcm", tmp_path, pdf_bytes=b"%PDF B"),
        _result(Status.ERROR, "RI.QA.PF_C.dcm", tmp_path),
    ]
    mails = run_messages(_summary(tmp_path, results), _settings(digest=False), "TrueBeam1")
    assert [m.kind for m in mails] == ["analysis", "analysis"]
    assert "1 failed, 0 errors" in mails[0].subject and "RI.QA.PF_B.dcm" in mails[0].subject
    assert "0 failed, 1 errors" in mails[1].subject
    assert [set(parts(_parse(m.as_bytes()))[2]) for m in mails] == [{"RI.QA.PF_B_analysis.pdf"}, set()]


@pytest.mark.parametrize(
    ("text", "key", "hint"),
    [
        ("email:\n  credentials-block: smtp\n  recipients: [a@b.org]\n", "email.from", "required"),
        ("email:\n  credentials-block: smtp\n  from: qa@b.org\n", "email.recipients", "at least one"),
        ("email:\n  send: sometimes\n", "email.send", "failures"),
        ("email:\n  subject: '{unit}: {failures}'\n", "email.subject", "{failed}"),
        ("email:\n  recipients: [a@b.org, not an address]\n", "email.recipients", "e-mail address"),
        ("email:\n  attachment-max-mb: 5\n", "email.attachment-max-mb", "attachments-max-mb"),
        ("email:\n  smtp-password: hunter2\n", "email.smtp-password", "blocks.setup email"),
        ("email:\n  password: hunter2\n", "email.password", "blocks.setup email"),
    ],
)
def test_email_config_mistakes_name_the_key(tmp_path: Path, text: str, key: str, hint: str) -> None:
    cfg = tmp_path / "mail.yml"
    cfg.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert key in str(err.value) and hint in str(err.value) and "line " in str(err.value)
    assert "hunter2" not in str(err.value)


def test_email_settings_do_not_change_the_analysis_config_hash() -> None:
    on = load_settings(
        text=f"email:\n  credentials-block: smtp\n  from: q@b.org\n  recipients: [{RECIPIENTS[0]}]\n"
    )
    assert on.email.enabled and on.hash == load_settings().hash
    assert on.as_yaml_dict()["email"]["from"] == "q@b.org"


# --------------------------------------------------------------------------- outbox (no Prefect)


def test_the_default_subject_counts_errors_and_the_run_link_is_in_both_parts(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    """Issue 15, point 3: an error-only run's subject said "0 failed, 0 passed"."""
    ledger = Ledger.open(tmp_path)
    default_subject = {"credentials-block": "test", "from": SENDER, "recipients": RECIPIENTS}
    email = EmailSettings.model_validate(default_subject)
    link = "http://qa-server:4200/runs/flow-run/0b7e6c2a-1d2f-4c3b-9a8e-5f6a7b8c9d0e"
    statuses = [Status.FAILED] * 2 + [Status.ERROR] + [Status.PASSED] * 5
    results = [_result(s, f"RI.QA.PF_{i}.dcm", tmp_path) for i, s in enumerate(statuses)]
    queue_run_mail(ledger, _summary(tmp_path, results), email, "run-1", run_link=link)
    only_error = [_result(Status.ERROR, "RI.QA.PF_truncated.dcm", tmp_path)]
    queue_run_mail(ledger, _summary(tmp_path, only_error), email, "run-2")  # no UI: no link
    assert deliver_pending(ledger, smtp_to(mailbox.port), "run-2", Log()) == 2
    first, second = (r.message for r in mailbox.received)
    assert first["Subject"] == "TrueBeam1 QA: 2 failed, 1 error, 5 passed"
    assert second["Subject"] == "TrueBeam1 QA: 0 failed, 1 error, 0 passed"
    text, page, _ = parts(first)
    assert f"This run in Prefect: {link}" in text and f'<a href="{link}">This run in Prefect</a>' in page
    text, page, _ = parts(second)
    assert "Prefect" not in text and "Prefect" not in page and "<a " not in page


def test_pending_mail_survives_a_down_server_and_is_sent_once(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path)
    results = [_result(Status.FAILED, "RI.QA.PF_B.dcm", tmp_path, pdf_bytes=b"%PDF B")]
    queued = queue_run_mail(ledger, _summary(tmp_path, results), _settings(), "run-1")
    assert [m.kind for m in queued] == ["digest"]
    port = free_port()  # nothing listens here yet
    with pytest.raises(MailError, match="connection refused"):
        deliver_pending(ledger, smtp_to(port), "run-1", Log())
    [kept] = Outbox(ledger).pending()
    assert kept.attempts == 1 and "connection refused" in (kept.last_error or "")

    box = Mailbox(port)
    box.start()
    try:
        assert deliver_pending(ledger, smtp_to(port), "run-2", Log()) == 1
        assert deliver_pending(ledger, smtp_to(port), "run-3", Log()) == 0
    finally:
        box.stop()
    assert len(box.received) == 1 and box.connections == 1  # nothing pending: no connection at all
    assert box.received[0].rcpt_tos == ["physics@clinic.test", "grosse@clinic.test"]
    assert Outbox(ledger).pending() == [] and [m.status for m in Outbox(ledger).of_run("run-2")] == ["sent"]


def test_quiet_days_warn_once_per_quiet_spell(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path)
    day0 = dt.datetime(2024, 3, 1, 2, 0, tzinfo=dt.UTC)
    busy = _summary(tmp_path, [_result(Status.PASSED, "RI.QA.PF_A.dcm", tmp_path)])
    quiet = _summary(tmp_path, [])
    email = _settings()

    def night(days: float, summary: RunSummary = quiet) -> list[str]:
        return [
            m.kind for m in queue_run_mail(ledger, summary, email, f"d{days}", day0 + dt.timedelta(days=days))
        ]

    assert night(0, busy) == []
    assert night(1) == night(2) == night(2.9) == []
    assert night(3.1) == ["quiet"]  # the threshold passed
    assert night(4) == night(10) == []  # not every night after
    assert night(11, busy) == []  # an acquisition resets the spell
    assert night(14.5) == ["quiet"]
    [warning] = [m for m in Outbox(ledger).pending() if m.run_id == "d3.1"]
    assert warning.subject == "TrueBeam1 QA: no new acquisitions for 3 days"
    assert ledger.get_state(LAST_ACQUISITION) == (day0 + dt.timedelta(days=11)).isoformat()


def test_email_off_queues_nothing(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path)
    failing = _summary(tmp_path, [_result(Status.FAILED, "RI.QA.PF_B.dcm", tmp_path, pdf_bytes=b"%PDF")])
    for email in (_settings(send="never"), EmailSettings()):
        assert queue_run_mail(ledger, failing, email, "r") == []
    assert Outbox(ledger).pending() == []


def test_a_refused_login_is_a_clear_error_without_the_password() -> None:
    import smtplib

    box = Mailbox(password=GOOD_PASSWORD)
    box.start()
    try:
        smtp = smtplib.SMTP("127.0.0.1", box.port, timeout=10)
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            smtp.login("qa", WRONG_PASSWORD)
        smtp.close()
    finally:
        box.stop()
    text = describe_error(err.value, where="127.0.0.1:25", user="qa", block="clinic-relay")
    assert "refused the login of user 'qa'" in text and "535" in text and "clinic-relay" in text
    assert WRONG_PASSWORD not in text


def test_socket_default_timeout_is_restored() -> None:
    from linac_qa.notify.send import default_socket_timeout

    before = socket.getdefaulttimeout()
    with default_socket_timeout(3):
        assert socket.getdefaulttimeout() == 3
    assert socket.getdefaulttimeout() == before
