"""The monthly report (issue 17, acceptance 3): a month of 30 nightly runs, 2 failures (one
superseded), 1 missed weekly test and 3 signed reviews, written straight into the trail and the
record: every one appears in the PDF (its text extracted, every page laid out within its margins)
and in the QuAAC export (read back with quaac's own reader)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from quaac.models import Document

from linac_qa.config import load_settings
from linac_qa.intake.discovery import _skip_by_name
from linac_qa.notify.outbox import Outbox
from linac_qa.records.ledger import Ledger
from linac_qa.review.due import schedules_of
from linac_qa.review.monthly import gather, is_monthly_report, month_bounds, previous_month, write_report
from linac_qa.review.publish import machines_of, mail, publish
from linac_qa.testing import synthetic_month as month
from tests.mailbox import RECIPIENTS, SENDER, Log, Mailbox, running, smtp_to
from tests.unit.test_report_page import assert_laid_out

NOW = dt.datetime(2024, 4, 1, 6, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], str]:
    directory = tmp_path_factory.mktemp("month")
    month.seed_month(directory)
    schedules = schedules_of(load_settings(text=month.CONFIG).analyses)
    report = gather(directory, month.MACHINE, month.MONTH, schedules, NOW)
    paths = write_report(directory, report)
    doc = pdfium.PdfDocument(paths[0])
    pages = [assert_laid_out(doc[n]) for n in range(len(doc))]
    return directory, paths, " ".join(" ".join(pages).split())


def test_every_result_review_repeat_and_miss_is_in_the_pdf(written: tuple[Path, list[Path], str]) -> None:
    _, paths, text = written
    assert [p.name for p in paths] == [
        "qa-report-TrueBeam1-2024-03.pdf",
        "qa-report-TrueBeam1-2024-03.quaac.json",
    ]
    assert "TrueBeam1: QA report for 2024-03" in text
    assert (
        "33 results: 31 passed, 2 failed, 0 errors; 1 superseded by a later pass; 1 missed; 1 pending review."
        in text
    )
    for day in range(
        1, 31
    ):  # each nightly result, by its acquisition time (the February one is not this month's)
        assert f"2024-03-{day:02d} 07:30" in text
    assert "2024-02-26" not in text
    assert "flatness_horizontal_percent = 3.9 %" in text and "max_error_mm = 0.62 mm" in text
    assert "repeated: passed on 2024-03-11 07:30" in text  # the 10th's failure, superseded
    assert text.count("repeated: passed on") == 2  # in the results table and the superseded table
    assert "approved by Dr Ada Smith, 2024-03-12 09:30: flatness repeated after the water tank check" in text
    assert "rejected by Dr Ben Jones, 2024-03-26 10:30: leaf 23 out of position; service called" in text
    assert "approved by Dr Ada Smith, 2024-03-16 08:30" in text
    assert "comment by Dr Ben Jones, 2024-03-21 08:30: watch the symmetry PENDING REVIEW" in text
    assert "Missed tests Test Schedule Was due picket fence weekly 2024-03-18" in text
    assert f"picket-fence/2024-03-25.dcm: {month.sha('picket-fence/2024-03-25.dcm')[:12]}" in text
    assert "linac-qa-flows 0.9.1 pylinac 3.49.0" in text and "5eed0f0a11ce5eed" in text


def test_the_quaac_export_holds_the_same_month(written: tuple[Path, list[Path], str]) -> None:
    _, paths, _ = written
    document = Document.from_json_file(str(paths[1]), check_hash=True)
    points = sorted(document.datapoints, key=lambda p: p.perform_datetime)
    assert len(points) == 33  # 30 field-analysis, 3 picket fence; not February's
    assert points[0].perform_datetime.date() == dt.date(2024, 3, 1)
    failed = [p for p in points if p.parameters["status"] == "failed"]
    assert [(p.perform_datetime.day, p.measurement_value) for p in failed] == [(10, 3.9), (25, 0.62)]
    assert {p.reference_value for p in points if p.name.startswith("field-analysis")} == {month.BASELINE}


def test_report_names_months_and_discovery() -> None:
    assert (
        previous_month(NOW) == "2024-03"
        and previous_month(dt.datetime(2024, 1, 1, tzinfo=dt.UTC)) == "2023-12"
    )
    start, end = month_bounds("2024-12", dt.UTC)
    assert (start.month, end.year, end.month) == (12, 2025, 1)
    with pytest.raises(ValueError, match="YYYY-MM"):
        month_bounds("2024-13", dt.UTC)
    assert is_monthly_report("qa-report-TrueBeam1-2024-03.pdf") and is_monthly_report(
        "qa-report-X-2024-03.quaac.json"
    )
    assert _skip_by_name("qa-report-TrueBeam1-2024-03.pdf", "_analysis", []) is not None
    assert not is_monthly_report("qa-report-notes.txt")


def test_the_reports_are_mailed_to_the_recipients_through_the_outbox(tmp_path: Path) -> None:
    month.seed_month(tmp_path)
    config = (
        month.CONFIG
        + f"email:\n  credentials-block: test\n  from: {SENDER}\n  recipients: [{RECIPIENTS[0]}]\n"
    )
    settings = load_settings(text=config)
    done = publish(tmp_path, settings, month.MONTH, machines_of(tmp_path, settings, None), NOW, dt.UTC)
    with running(Mailbox()) as box:
        assert mail(tmp_path, settings, done, "report-1", Log(), smtp_to(box.port)) == 1
    [got] = box.received
    assert got.message["Subject"] == "TrueBeam1 QA report for 2024-03"
    assert got.rcpt_tos == [RECIPIENTS[0]]
    names = [p.get_filename() for p in got.message.iter_attachments()]
    assert names == ["qa-report-TrueBeam1-2024-03.pdf", "qa-report-TrueBeam1-2024-03.quaac.json"]
    ledger = Ledger.open(tmp_path)
    assert [m.status for m in Outbox(ledger).of_run("report-1")] == ["sent"]
    ledger.close()
