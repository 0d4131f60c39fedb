"""Pass/fail e-mail: messages built with the standard library, kept in the ledger until a server
takes them, sent through a prefect-email block; tested against a real SMTP server (aiosmtpd).

Nothing here imports Prefect at module level: the session's Prefect server fixture must set
PREFECT_API_URL before Prefect reads its settings.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from linac_qa import synthetic
from linac_qa.config import ConfigError, load_settings
from linac_qa.ledger import Ledger
from linac_qa.model import AnalysisResult, Status
from linac_qa.notify.message import run_messages
from linac_qa.notify.outbox import LAST_ACQUISITION, queue_run_mail
from linac_qa.notify.send import MailError, Server, deliver_pending, describe_error
from linac_qa.notify.settings import EmailSettings
from linac_qa.summary import RunSummary
from tests.conftest import ROOT, free_port, register_inputs, run_cli
from tests.mailbox import Mailbox, running

SENDER = "Linac QA <qa-robot@clinic.test>"
RECIPIENTS = ["physics@clinic.test", "Dr. Größe <grosse@clinic.test>"]
GOOD_PASSWORD = "right-horse-battery-7"
WRONG_PASSWORD = "wr0ng-Pa55-staple-42"
NON_ASCII_PF = "RI.QA.PF_Größe Ω.dcm"  # its report: "RI.QA.PF_Größe Ω_analysis.pdf"
SUBJECT = "{unit} QA: {failed} failed, {errors} errors, {passed} passed, {ignored} ignored"


# --------------------------------------------------------------------------- a real SMTP server


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with running(Mailbox()) as box:
        yield box


def smtp_to(box_port: int) -> Server:
    import smtplib

    return Server(
        connect=lambda: smtplib.SMTP("127.0.0.1", box_port, timeout=10),
        describe=lambda exc: describe_error(exc, where=f"127.0.0.1:{box_port}", user=None, block="test"),
    )


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str, *args: Any) -> None:
        self.lines.append(msg % args)

    warning = error = info


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


def _parts(message: EmailMessage) -> tuple[str, str, dict[str, bytes]]:
    alternative = next(p for p in message.walk() if p.get_content_type() == "multipart/alternative")
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    text = alternative.get_body(("plain",))
    page = alternative.get_body(("html",))
    assert text is not None and page is not None
    attachments = {str(a.get_filename()): a.get_content() for a in message.iter_attachments()}
    return text.get_content(), page.get_content(), attachments


def addresses(message: EmailMessage, header: str) -> list[str]:
    return [a.addr_spec for a in message[header].addresses]


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
    text, page, attachments = _parts(message)
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
    text, _, attachments = _parts(_parse(mail.as_bytes()))
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
        text, page, _ = _parts(_parse(mail.as_bytes()))
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
    text, _, _ = _parts(_parse(mail.as_bytes()))
    assert "Not judged (" in text and "NOT JUDGED" in text and "\npassed" not in text


def test_reports_over_the_size_limit_are_listed_with_their_path(tmp_path: Path) -> None:
    results = [
        _result(Status.FAILED, "RI.QA.PF_B.dcm", tmp_path, pdf_bytes=b"x" * 600_000),
        _result(Status.FAILED, "RI.QA.Starshot_B.dcm", tmp_path, pdf_bytes=b"y" * 500_000),
    ]
    [mail] = run_messages(_summary(tmp_path, results), _settings(**{"attachments-max-mb": 1}), "TrueBeam1")
    text, page, attachments = _parts(_parse(mail.as_bytes()))
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
    text, page, _ = _parts(_parse(mail.as_bytes()))
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
    assert [set(_parts(_parse(m.as_bytes()))[2]) for m in mails] == [{"RI.QA.PF_B_analysis.pdf"}, set()]


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


def test_pending_mail_survives_a_down_server_and_is_sent_once(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path)
    results = [_result(Status.FAILED, "RI.QA.PF_B.dcm", tmp_path, pdf_bytes=b"%PDF B")]
    queued = queue_run_mail(ledger, _summary(tmp_path, results), _settings(), "run-1")
    assert [m.kind for m in queued] == ["digest"]
    port = free_port()  # nothing listens here yet
    with pytest.raises(MailError, match="connection refused"):
        deliver_pending(ledger, smtp_to(port), "run-1", Log())
    [kept] = ledger.pending_mail()
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
    assert ledger.pending_mail() == [] and [m.status for m in ledger.mail_of_run("run-2")] == ["sent"]


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
    [warning] = [m for m in ledger.pending_mail() if m.run_id == "d3.1"]
    assert warning.subject == "TrueBeam1 QA: no new acquisitions for 3 days"
    assert ledger.get_state(LAST_ACQUISITION) == (day0 + dt.timedelta(days=11)).isoformat()


def test_email_off_queues_nothing(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path)
    failing = _summary(tmp_path, [_result(Status.FAILED, "RI.QA.PF_B.dcm", tmp_path, pdf_bytes=b"%PDF")])
    for email in (_settings(send="never"), EmailSettings()):
        assert queue_run_mail(ledger, failing, email, "r") == []
    assert ledger.pending_mail() == []


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


# --------------------------------------------------------------------------- end to end (Prefect)


def setup_block(api: str, name: str, port: int, *, username: str | None = None, password: str = "") -> str:
    """`python -m blocks.setup email` as a user runs it, the password in the environment."""
    args = ["--name", name, "--server", "127.0.0.1", "--port", str(port), "--security", "none"]
    if username:
        args += ["--username", username]
    env = {**os.environ, "PREFECT_API_URL": api, "LINAC_QA_SMTP_PASSWORD": password}
    proc = subprocess.run(
        [sys.executable, "-m", "blocks.setup", "email", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    if password:
        assert password not in proc.stdout + proc.stderr
    return proc.stdout


def write_config(folder: Path, block: str | None, **email: Any) -> Path:
    cfg = folder.parent / f"{folder.name}.yml"
    section: dict[str, Any] = {"from": SENDER, "recipients": RECIPIENTS, "subject": SUBJECT, **email}
    if block:
        section["credentials-block"] = block
    doc = {"general": {"unit": "TrueBeam1", "settle-seconds": 0}, "email": section}
    cfg.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")  # JSON is YAML
    return cfg


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A passing, a failing and an erroring starshot (they analyse in about a second) and a photo."""
    root = tmp_path_factory.mktemp("email-template")
    synthetic.starshot(root / "RI.QA.Starshot_A.dcm", wobble_mm=0.1)
    synthetic.starshot(root / "RI.QA.Starshot_B.dcm", wobble_mm=0.9, seed=1)
    synthetic.truncated_dicom(root / "RI.QA.Starshot_A.dcm", root / "RI.QA.Starshot_truncated.dcm")
    synthetic.png_image(root / "team photo.png")
    return root


TEMPLATE_COUNTS = {"failed": 1, "error": 1, "passed": 1, "ignored": 1}


def fresh_copy(template: Path, tmp_path: Path, name: str, *, picket_fence: bool = False) -> Path:
    """`picket_fence`: also a failing picket fence with a non-ASCII name (its analysis takes ~10 s)."""
    folder = tmp_path / name
    shutil.copytree(template, folder)
    if picket_fence:
        synthetic.picket_fence(folder / NON_ASCII_PF, leaf_error_mm=1.2, seed=1)
    register_inputs(folder)
    return folder


@pytest.fixture(scope="module")
def main_box() -> Iterator[Mailbox]:
    with running(Mailbox()) as box:
        yield box


@pytest.fixture(scope="module")
def main_block(prefect_api: str, main_box: Mailbox) -> str:
    out = setup_block(prefect_api, "lqa-test-relay", main_box.port)
    assert "created" in out or "updated" in out
    return "lqa-test-relay"


def failing_pdfs(root: Path, summary: dict[str, Any]) -> dict[str, bytes]:
    pdfs = [
        o for r in summary["results"] if r["status"] == "failed" for o in r["outputs"] if o.endswith(".pdf")
    ]
    return {Path(o).name: (root / o).read_bytes() for o in pdfs}


def subject_counts(summary: dict[str, Any]) -> str:
    c = Counter(r["status"] for r in summary["results"])
    return SUBJECT.format(
        unit="TrueBeam1", failed=c["failed"], errors=c["error"], passed=c["passed"], ignored=c["ignored"]
    )


def api_post(api: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{api}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def flow_run_of(api: str, root: Path) -> dict[str, Any]:
    runs = api_post(api, "/flow_runs/filter", {"sort": "START_TIME_DESC", "limit": 200})
    return next(r for r in runs if r["parameters"].get("directory") == str(root.resolve()))


@pytest.mark.e2e
def test_digest_through_the_block(
    template: Path, tmp_path: Path, main_box: Mailbox, main_block: str, prefect_api: str
) -> None:
    root = fresh_copy(template, tmp_path, "digest", picket_fence=True)
    main_box.received.clear()
    run = run_cli(root, "--config", write_config(root, main_block), "--json", api=prefect_api)
    assert run.code == 1, run.stderr[-3000:]
    summary = run.summary
    assert Counter(r["status"] for r in summary["results"]) == {
        "failed": 2,
        "error": 1,
        "passed": 1,
        "ignored": 1,
    }
    [mail] = main_box.received
    assert mail.mail_from == "qa-robot@clinic.test"
    assert mail.rcpt_tos == ["physics@clinic.test", "grosse@clinic.test"]
    assert addresses(mail.message, "From") == ["qa-robot@clinic.test"]
    assert addresses(mail.message, "To") == mail.rcpt_tos
    assert (
        mail.message["Subject"]
        == subject_counts(summary)
        == "TrueBeam1 QA: 2 failed, 1 errors, 1 passed, 1 ignored"
    )
    text, page, attachments = _parts(mail.message)
    expected = failing_pdfs(root, summary)
    assert "RI.QA.PF_Größe Ω_analysis.pdf" in expected and len(expected) == 2
    assert attachments == expected  # byte-identical, the non-ASCII name intact
    assert "RI.QA.Starshot_A_analysis.pdf" not in attachments  # no passing report in `failures` mode
    assert "RI.QA.Starshot_truncated.dcm" in text and "RI.QA.Starshot_truncated.dcm" in page
    assert [n["status"] for n in summary["notifications"]] == ["sent"]

    # The Prefect UI shows the notification as a task run with its outcome.
    flow_run = flow_run_of(prefect_api, root)
    tasks = api_post(prefect_api, "/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run["id"]]}}})
    [notify] = [t for t in tasks if t["name"].startswith("notify")]
    assert notify["state"]["type"] == "COMPLETED" and notify["state"]["message"] == "1 e-mail(s) sent"


@pytest.mark.e2e
def test_one_message_per_failure_or_error(
    template: Path, tmp_path: Path, main_box: Mailbox, main_block: str, prefect_api: str
) -> None:
    root = fresh_copy(template, tmp_path, "per-analysis")
    main_box.received.clear()
    run = run_cli(root, "--config", write_config(root, main_block, digest=False), "--json", api=prefect_api)
    assert run.code == 1, run.stderr[-3000:]
    problems = [r for r in run.summary["results"] if r["status"] in ("failed", "error")]
    assert len(main_box.received) == len(problems) == 2
    assert [n["status"] for n in run.summary["notifications"]] == ["sent"] * 2
    assert sorted(m.message["Subject"] for m in main_box.received) == [
        "TrueBeam1 QA: 0 failed, 1 errors, 0 passed, 0 ignored (starshot: RI.QA.Starshot_truncated.dcm)",
        "TrueBeam1 QA: 1 failed, 0 errors, 0 passed, 0 ignored (starshot: RI.QA.Starshot_B.dcm)",
    ]
    attached: dict[str, bytes] = {}
    for mail in main_box.received:
        attached.update(_parts(mail.message)[2])
    assert attached == failing_pdfs(root, run.summary)


@pytest.mark.e2e
def test_server_down_keeps_the_digest_for_the_next_run_then_quiet_days(
    template: Path, tmp_path: Path, prefect_api: str
) -> None:
    port = free_port()  # the block's server is down for the first run
    setup_block(prefect_api, "lqa-test-later", port)
    root = fresh_copy(template, tmp_path, "down")
    config = write_config(root, "lqa-test-later", retries=1)
    first = run_cli(root, "--config", config, "--json", api=prefect_api)
    assert first.code == 1, first.stderr[-3000:]  # the results decide the exit status, not the e-mail
    # The same results as with a working server (exit status 1 for the failure and the error).
    assert Counter(r["status"] for r in first.summary["results"]) == TEMPLATE_COUNTS
    [note] = first.summary["notifications"]
    assert (
        note["status"] == "failed" and "connection refused" in note["detail"] and "next run" in note["detail"]
    )
    assert "2 attempt(s)" in note["detail"]  # retried within the run
    assert "connection refused" in first.stderr

    # Silence is not good news: make the last new acquisition four days old, so the next run (with
    # nothing new) owes a quiet-days warning as well as the pending digest.
    four_days_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=4)).isoformat()
    with sqlite3.connect(root / ".linac-qa" / "ledger.sqlite") as db:
        changed = db.execute("UPDATE state SET value = ? WHERE key = ?", (four_days_ago, LAST_ACQUISITION))
        assert changed.rowcount == 1

    box = Mailbox(port)
    box.start()
    try:
        second = run_cli(root, "--config", config, "--json", api=prefect_api)
        third = run_cli(root, "--config", config, "--json", api=prefect_api)
    finally:
        box.stop()
    assert second.code == third.code == 0, second.stderr[-3000:]
    assert second.summary["results"] == third.summary["results"] == []  # nothing re-analysed
    # The pending digest first, then the warning; each exactly once, although two runs saw the server.
    digest, warning = (m.message for m in box.received)
    assert digest["Subject"] == subject_counts(first.summary)
    assert _parts(digest)[2] == failing_pdfs(root, first.summary)
    assert warning["Subject"] == "TrueBeam1 QA: no new acquisitions for 4 days"
    assert "broken export" in _parts(warning)[0]
    assert [n["status"] for n in second.summary["notifications"]] == ["sent", "sent"]
    assert "written by the run of" in second.summary["notifications"][0]["detail"]
    assert [n["status"] for n in third.summary["notifications"]] == ["none"]  # not every night after


@pytest.mark.e2e
def test_wrong_password_is_a_clear_error_and_never_shown(
    template: Path, tmp_path: Path, prefect_api: str
) -> None:
    box = Mailbox(password=GOOD_PASSWORD)
    box.start()
    try:
        setup_block(prefect_api, "lqa-test-auth", box.port, username="qa", password=WRONG_PASSWORD)
        root = tmp_path / "auth"
        root.mkdir()
        shutil.copy(template / "RI.QA.Starshot_B.dcm", root)
        run = run_cli(
            root, "--config", write_config(root, "lqa-test-auth", retries=0), "--json", api=prefect_api
        )
    finally:
        box.stop()
    assert run.code == 1 and box.received == [], run.stderr[-3000:]
    [note] = run.summary["notifications"]
    assert note["status"] == "failed"
    assert "refused the login of user 'qa'" in note["detail"] and "lqa-test-auth" in note["detail"]
    assert "refused the login of user 'qa'" in run.stderr  # in the log
    flow_run = flow_run_of(prefect_api, root)
    logs = api_post(prefect_api, "/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run["id"]]}}})
    artifacts = api_post(prefect_api, "/artifacts/filter", {"flow_runs": {"id": {"any_": [flow_run["id"]]}}})
    assert any("refused the login" in log["message"] for log in logs)
    everything = [run.stdout, run.stderr, json.dumps(logs), json.dumps(artifacts), json.dumps(flow_run)]
    everything += [
        p.read_bytes().decode("latin-1") for p in root.rglob("*") if p.is_file()
    ]  # ledger, outputs
    assert not [text for text in everything if WRONG_PASSWORD in text]


@pytest.mark.e2e
def test_email_off_sends_nothing_and_opens_no_connection(
    template: Path, tmp_path: Path, main_box: Mailbox, main_block: str, prefect_api: str
) -> None:
    root = tmp_path / "off"
    root.mkdir()
    shutil.copy(template / "RI.QA.Starshot_B.dcm", root)
    connections = main_box.connections
    main_box.received.clear()
    never = run_cli(root, "--config", write_config(root, main_block, send="never"), "--json", api=prefect_api)
    no_block = run_cli(root, "--config", write_config(root, None), "--json", "--force", api=prefect_api)
    for run, why in ((never, "email.send: never"), (no_block, "no email.credentials-block")):
        assert run.code == 1 and len(run.summary["results"]) == 1, run.stderr[-3000:]
        assert run.summary["notifications"] == [
            {"channel": "email", "status": "none", "detail": f"e-mail is off ({why})"}
        ]
    assert main_box.received == [] and main_box.connections == connections
    with sqlite3.connect(root / ".linac-qa" / "ledger.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM notifications").fetchone() == (0,)


def test_socket_default_timeout_is_restored() -> None:
    from linac_qa.notify.send import default_socket_timeout

    before = socket.getdefaulttimeout()
    with default_socket_timeout(3):
        assert socket.getdefaulttimeout() == 3
    assert socket.getdefaulttimeout() == before
