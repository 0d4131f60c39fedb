"""`python -m flows.report DIR --month 2024-03 --email` on a seeded month (issue 17, acceptance 3):
the PDF and the QuAAC export written beside the data, and both e-mailed through the prefect-email
block on a real Prefect server to a real SMTP server (aiosmtpd). The report's content:
tests/unit/test_monthly_report.py."""

from __future__ import annotations

from pathlib import Path

from linac_qa.testing import synthetic_month as month
from tests.conftest import run_cli
from tests.mailbox import RECIPIENTS, SENDER, Mailbox, parts, running, setup_block


def test_the_report_command_writes_and_mails_the_month(prefect_api: str, tmp_path: Path) -> None:
    folder = tmp_path / "TrueBeam1"
    folder.mkdir()
    month.seed_month(folder)
    with running(Mailbox()) as box:
        setup_block(prefect_api, "report-mail", box.port)
        config = tmp_path / "truebeam1.yml"
        config.write_text(
            month.CONFIG + f"email:\n  credentials-block: report-mail\n  from: {SENDER}\n"
            f"  recipients: [{RECIPIENTS[0]}]\n",
            encoding="utf-8",
        )
        done = run_cli(folder, "--month", month.MONTH, "--config", config, "--email", api=prefect_api,
                       module="flows.report")  # fmt: skip
    assert done.code == 0, done.stderr[-3000:]
    pdf, quaac = folder / "qa-report-TrueBeam1-2024-03.pdf", folder / "qa-report-TrueBeam1-2024-03.quaac.json"
    assert (
        f"{pdf}: 33 results: 31 passed, 2 failed, 0 errors; 1 superseded by a later pass; 1 missed"
        in done.stdout
    )
    assert f"e-mailed 1 message(s) to {RECIPIENTS[0]}" in done.stdout
    [got] = box.received
    text, _, attached = parts(got.message)
    assert got.message["Subject"] == "TrueBeam1 QA report for 2024-03" and "1 pending review" in text
    assert attached == {pdf.name: pdf.read_bytes(), quaac.name: quaac.read_bytes()}
