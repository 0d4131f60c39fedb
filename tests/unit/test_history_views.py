"""The views of a machine's record (issue 16): the dashboard file, the e-mail's record headings and
inline trend charts (through a real SMTP server), and the Prefect artifact's markdown. Built from
`MetricSeries` values directly (seeded histories): no record, no analysis. The dashboard in a real
browser: tests/e2e/test_dashboard_browser.py."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import re
import struct
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from linac_qa.config import load_settings
from linac_qa.history.artifact import run_markdown
from linac_qa.history.charts import charted, trend_png
from linac_qa.history.dashboard import dashboard_path, is_dashboard, render_dashboard, write_dashboard
from linac_qa.history.latest import latest_first, result_ids_of
from linac_qa.history.series import BaselineChange, Level, MetricSeries, Point, SeriesKey, Window
from linac_qa.intake.discovery import discover
from linac_qa.model import AnalysisResult, SkipReason, Status
from linac_qa.notify.message import DRIFT_HEADING, TOLERANCE_HEADING, TRENDS_HEADING, run_messages
from linac_qa.notify.outbox import queue_run_mail
from linac_qa.notify.send import deliver_pending
from linac_qa.notify.settings import EmailSettings
from linac_qa.records.ledger import Ledger
from linac_qa.records.summary import RunSummary
from linac_qa.testing.histories import seeded_histories
from tests.mailbox import RECIPIENTS, SENDER, SUBJECT, Log, Mailbox, parts, running, smtp_to

GENERATED = dt.datetime(2024, 3, 5, 6, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with running(Mailbox()) as box:
        yield box


def _flatness(values: list[float], reports: list[str | None] | None = None) -> MetricSeries:
    """6X flatness, baseline 102 % re-baselined to 102.5 % before the last result; tolerance 1 %,
    action 2 % of the baseline (absolute here: the record computes them, the views draw them)."""
    start = dt.datetime(2024, 3, 1, 7, 0, tzinfo=dt.UTC)
    points = []
    for i, v in enumerate(values):
        base = 102.5 if i == len(values) - 1 else 102.0
        points.append(
            Point(
                acquired=start + i * DAY,
                value=v,
                result_id=f"r{i}",
                report=(reports or [f"FA/flat_{i}_analysis.pdf"] * len(values))[i],
                baseline=base,
                tolerance=Window(base - 1, base + 1),
                action=Window(base - 2, base + 2),
                level=Level.OK
                if abs(v - base) <= 1
                else Level.TOLERANCE
                if abs(v - base) <= 2
                else Level.ACTION,
            )
        )
    changes = (
        BaselineChange(start, 102.0, "physicist", "commissioning"),
        BaselineChange(
            start + (len(values) - 1) * DAY - dt.timedelta(hours=1), 102.5, "physicist", "new chamber"
        ),
    )
    return MetricSeries(
        SeriesKey("TrueBeam1", "field-analysis", "flatness", "energy=6X"), "%", tuple(points), changes
    )


# --------------------------------------------------------------------------- dashboard (no browser)


def _payload(page: str) -> list[dict[str, object]]:
    found = re.search(r'id="data-gz">([^<]*)<', page)
    assert found
    return list(json.loads(gzip.decompress(base64.b64decode(found.group(1)))))


def test_the_dashboard_lists_failures_and_drift_first_and_keeps_every_point(tmp_path: Path) -> None:
    series = seeded_histories(metrics=5, points=40)
    page = render_dashboard(series, "TrueBeam1", GENERATED)
    levels = re.findall(r'<td class="level">([^<]*)</td>', page)
    assert levels == ["ACTION", "drift", "tolerance", "ok", "ok"]
    charts = _payload(page)
    assert [len(c["v"]) for c in charts] == [40] * 5  # type: ignore[arg-type]
    failing = charts[0]  # the table's order: the failure's chart first
    assert str(failing["lv"]).endswith("a")
    assert len(failing["rb"]) == 1 and failing["b"][-1][1] != failing["b"][0][1]  # type: ignore[index]
    markup = re.sub(r'(id="(plotly|data)-gz">)[^<]*', r"\1", page)  # base64 holds any letters
    assert "http" not in markup and " src=" not in markup  # offline: nothing to fetch


def test_links_are_relative_to_the_dashboard_or_file_uris_for_reports_elsewhere(tmp_path: Path) -> None:
    elsewhere = str(tmp_path.parent / "reports" / "flat 1_analysis.pdf")
    series = _flatness([102.1, 102.2], reports=["FA/flat ä_analysis.pdf", elsewhere])
    charts = _payload(render_dashboard([series], "TrueBeam1", GENERATED))
    assert charts[0]["r"] == ["FA/flat%20%C3%A4_analysis.pdf", Path(elsewhere).as_uri()]


def test_the_dashboard_is_written_atomically_beside_the_data_and_discovery_skips_it(
    tmp_path: Path,
) -> None:
    assert dashboard_path(tmp_path, "Linac 2/East") == tmp_path / "qa-dashboard-Linac_2_East.html"
    path = write_dashboard([_flatness([102.1])], "Linac 2/East", tmp_path, GENERATED)
    first = path.read_text(encoding="utf-8")
    write_dashboard([_flatness([102.1, 104.9])], "Linac 2/East", tmp_path, GENERATED)
    assert path.read_text(encoding="utf-8") != first
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left
    assert is_dashboard(path.name) and not is_dashboard("dashboard.html")
    cfg = tmp_path.parent / f"{tmp_path.name}-config.yml"
    cfg.write_text("general:\n  settle-seconds: 0\n", encoding="utf-8")
    found = discover(tmp_path, load_settings(cfg), {}, force=False, retry_errors=False)
    assert found.new == [] and found.skipped[SkipReason.OWN_OUTPUT] == 1


def test_twenty_metrics_of_five_years_stay_under_five_megabytes() -> None:
    page = render_dashboard(seeded_histories(metrics=20, points=1800), "TrueBeam1", GENERATED)
    assert len(page.encode()) < 5_000_000


# --------------------------------------------------------------------------- trend PNGs


def test_a_trend_png_per_failing_or_drifting_metric_small_enough_for_an_email() -> None:
    latest = latest_first(seeded_histories(metrics=4, points=200))
    chosen = charted(latest)
    assert [x.word for x in chosen] == ["ACTION", "drift"]
    png = trend_png(chosen[0])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 60_000
    assert struct.unpack(">II", png[16:24]) == (576, 220)  # IHDR: width, height


# --------------------------------------------------------------------------- e-mail


def _summary(root: Path) -> RunSummary:
    result = AnalysisResult(
        analysis="field-analysis",
        model="FieldAnalysis",
        files=["FA/flat_3.dcm"],
        status=Status.PASSED,
        reason="flatness 103.8 % within limits",
        unit="TrueBeam1",
        judged=True,
    )
    return RunSummary(
        directory=str(root), unit="TrueBeam1", started=GENERATED, finished=GENERATED, results=[result]
    )


def _email() -> EmailSettings:
    return EmailSettings.model_validate(
        {"credentials-block": "test", "from": SENDER, "recipients": RECIPIENTS, "subject": SUBJECT}
    )


def test_the_digest_shows_tolerance_and_drift_with_inline_charts(tmp_path: Path, mailbox: Mailbox) -> None:
    """Acceptance 6: a run of passes only still sends a digest when a metric reached its tolerance
    level or drifts; the charts are multipart/related parts the HTML shows by Content-ID."""
    seeded = seeded_histories(metrics=3, points=50)  # 0: drift, 1: action, 2: tolerance
    tolerance = _flatness([102.1, 102.0, 101.8, 103.8])  # +1.3 % of the new baseline: tolerance
    trends = latest_first([*seeded, tolerance])
    ledger = Ledger.open(tmp_path)
    queue_run_mail(ledger, _summary(tmp_path), _email(), "run-1", trends=trends)
    assert deliver_pending(ledger, smtp_to(mailbox.port), "run-1", Log()) == 1
    message = mailbox.received[0].message
    text, page, attachments = parts(message)
    assert attachments == {}  # the charts are inline, never attachments
    for heading in (TOLERANCE_HEADING, DRIFT_HEADING):
        assert f"{heading}:" in text and f"<h3>{heading}</h3>" in page.replace("&#x27;", "'")
    assert "field-analysis flatness (energy=6X): 103.8 %, baseline 102.5 %" in text
    assert "sustained shift above the centre line" in text
    assert TRENDS_HEADING in page
    related = next(p for p in message.walk() if p.get_content_type() == "multipart/related")
    html_part, *images = related.iter_parts()
    assert html_part.get_content_type() == "text/html"
    assert [i.get_content_type() for i in images] == ["image/png", "image/png"]  # action, drift
    for image in images:
        assert isinstance(image, EmailMessage)
        cid = str(image["Content-ID"]).strip("<>")
        assert f'src="cid:{cid}"' in page and image.get_content()[:4] == b"\x89PNG"


def test_without_the_record_the_digest_is_as_before(tmp_path: Path) -> None:
    """Today's callers pass no trends: a run of passes sends nothing with `send: failures`."""
    assert run_messages(_summary(tmp_path), _email(), "TrueBeam1") == []
    assert run_messages(_summary(tmp_path), _email(), "TrueBeam1", trends=[]) == []


# --------------------------------------------------------------------------- Prefect artifact


def test_the_run_artifact_gives_each_metric_against_its_baseline_and_level() -> None:
    series = _flatness([102.1, 102.3, 101.9, 104.8])
    other = _flatness([102.0])
    other = MetricSeries(SeriesKey("TrueBeam1", "field-analysis", "symmetry", "energy=6X"), "%", other.points)
    ids = result_ids_of([series, other], ["FA/flat_3_analysis.pdf"])
    assert ids == {"r3"}  # the symmetry point shares no report with the run: not this run's
    markdown = run_markdown(
        latest_first([series, other], ids), "TrueBeam1", "/data/qa-dashboard-TrueBeam1.html"
    )
    when = dt.datetime(2024, 3, 4, 7, 0, tzinfo=dt.UTC).astimezone().strftime("%Y-%m-%d %H:%M")
    assert markdown.splitlines() == [
        "# TrueBeam1: this run against the record",
        "",
        "| level | metric | value | baseline | change | tolerance | action | drift | acquired | report |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| **ACTION** | field-analysis flatness (energy=6X) | 104.8 % | 102.5 % | +2.3 % / +2.24 % "
        f"| 101.5 to 103.5 % | 100.5 to 104.5 % |  | {when} | FA/flat_3_analysis.pdf |",
        "",
        "Every metric's history: /data/qa-dashboard-TrueBeam1.html",
    ]
    assert run_markdown([], "TrueBeam1").endswith("No metric of this run is in the record.")
