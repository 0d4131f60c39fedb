"""A machine's monthly QA report: every result acquired in the month with its values, baselines,
levels, verdict and reviews, the failures a later pass superseded, the tests the schedules say were
missed, and each result's source files, software and config: one PDF an auditor can read and a
physicist can sign, `DIR/qa-report-<machine>-<YYYY-MM>.pdf`, with the QuAAC export of the same
month beside it (`.quaac.json`). Both written atomically; runs skip them as their own output.

Read from the review trail (results, reviews), the record (values, baselines) and each result's
`.json` (provenance): nothing here writes to any of them."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import zoneinfo
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from linac_qa.history import export
from linac_qa.history.record import Row
from linac_qa.history.store import from_text, to_text
from linac_qa.model import Status
from linac_qa.records.outputs import staged_outputs
from linac_qa.records.reporting import mark
from linac_qa.review import queue
from linac_qa.review.due import Schedule, done_days, missed
from linac_qa.review.trail import Decision, Entry, Review, Trail

PREFIX = "qa-report-"
PDF = ".pdf"
QUAAC = ".quaac.json"
SHA_SHOWN = 12  # hex digits of each source's SHA-256: enough to match a file, short enough to read
DONE = {Decision.APPROVE: "approved", Decision.REJECT: "rejected", Decision.COMMENT: "comment"}
_MONTH = re.compile(r"(\d{4})-(\d{2})")


def report_paths(directory: Path, machine: str, month: str) -> tuple[Path, Path]:
    """The PDF and the QuAAC export; the machine's name kept to what any file system takes."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", machine).strip("._") or "machine"
    stem = directory / f"{PREFIX}{safe}-{month}"
    return stem.with_name(stem.name + PDF), stem.with_name(stem.name + QUAAC)


def is_monthly_report(name: str) -> bool:
    """A file a run wrote (discovery skips it as its own output)."""
    lower = name.lower()
    return lower.startswith(PREFIX) and lower.endswith((PDF, QUAAC))


def month_bounds(month: str, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """[first instant, first instant of the next month) in `tz`; ValueError unless YYYY-MM."""
    found = _MONTH.fullmatch(month)
    if not found or not 1 <= int(found[2]) <= 12:
        raise ValueError(f"month must be YYYY-MM, e.g. 2024-03 (got {month!r})")
    year, number = int(found[1]), int(found[2])
    start = dt.datetime(year, number, 1, tzinfo=tz)
    end = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=tz)
    return start, end


def previous_month(now: dt.datetime) -> str:
    """The month before `now`'s: what a run on the 1st reports."""
    return (now.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")


def timezone(name: str | None) -> dt.tzinfo:
    return zoneinfo.ZoneInfo(name) if name else dt.UTC


@dataclass(frozen=True)
class Line:
    """One result of the month."""

    entry: Entry
    values: list[Row]
    reviews: list[Review]
    repeated: Entry | None  # the later pass that superseded this failure
    state: queue.State
    provenance: dict[str, Any]  # from the result's `.json`; empty when it cannot be read


@dataclass(frozen=True)
class MonthReport:
    machine: str
    month: str
    tz: dt.tzinfo
    lines: list[Line]
    missed: list[tuple[str, str, dt.date]]  # (analysis, schedule, due day)
    generated: dt.datetime

    @property
    def superseded(self) -> list[Line]:
        return [x for x in self.lines if x.repeated is not None]

    @property
    def pending(self) -> list[Line]:
        return [x for x in self.lines if x.state is queue.State.PENDING]


def gather(
    directory: Path,
    machine: str,
    month: str,
    schedules: Mapping[str, Schedule],
    now: dt.datetime,
    tz: dt.tzinfo = dt.UTC,
) -> MonthReport:
    start, end = month_bounds(month, tz)
    since, before = to_text(start), to_text(end)
    trail = Trail(directory)
    try:
        everything = trail.entries(machine)
        # An error before any acquisition time was read belongs to the month it was recorded in.
        chosen = [i for i in queue.items(trail, machine) if since <= _dated(i.entry) < before]
    finally:
        trail.close()
    values: dict[str, list[Row]] = defaultdict(list)
    for row in export.rows(directory, machine, since, before):
        values[row.result_id].append(row)
    lines = [
        Line(
            i.entry, values[i.entry.result_id], i.reviews, i.repeated, i.state, provenance(directory, i.entry)
        )
        for i in chosen
    ]
    gaps = [
        (analysis, plan.schedule, day)
        for analysis, plan in schedules.items()
        for day in missed(
            plan,
            done_days(everything, machine, analysis, tz),
            start.date(),
            end.date(),
            now.astimezone(tz).date(),
        )
    ]
    return MonthReport(machine, month, tz, lines, sorted(gaps, key=lambda g: (g[2], g[0])), now)


def _dated(e: Entry) -> str:
    return e.acquired or e.recorded


def provenance(directory: Path, e: Entry) -> dict[str, Any]:
    """The provenance the run wrote in the result's `.json` (its id is that file's path)."""
    try:
        ours = json.loads((directory / e.result_id).read_text(encoding="utf-8"))["linac-qa-flows"]
        found = ours.get("provenance") or {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    return found if isinstance(found, dict) else {}


def write_report(
    directory: Path,
    report: MonthReport,
    performer: str = "linac-qa-flows",
    email: str = "linac-qa-flows@example.org",
) -> list[Path]:
    """The PDF, and the QuAAC export when the month has values, replaced together atomically."""
    pdf, quaac = report_paths(directory, report.machine, report.month)
    start, end = month_bounds(report.month, report.tz)
    found = export.rows(directory, report.machine, to_text(start), to_text(end))
    finals = [pdf, quaac] if found else [pdf]
    with staged_outputs(finals) as temporary:
        temporary[pdf].write_bytes(render_pdf(report))
        if found:
            export.to_quaac(found, directory, temporary[quaac], performer, email)
    if not found:  # an export from an earlier report of the month would no longer match the PDF
        quaac.unlink(missing_ok=True)
    return finals


# --------------------------------------------------------------------------- the PDF


def render_pdf(report: MonthReport) -> bytes:
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.units import cm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    styles = _styles()
    out = io.BytesIO()
    title = f"{report.machine}: QA report for {report.month}"
    doc = SimpleDocTemplate(
        out, pagesize=landscape(A4), leftMargin=1.5 * cm, rightMargin=1.5 * cm, topMargin=1.5 * cm,
        bottomMargin=1.5 * cm, title=title, author="linac-qa-flows",
    )  # fmt: skip
    width = landscape(A4)[0] - 3 * cm
    lines = report.lines
    counts = summary_line(report)
    content: list[Any] = [
        Paragraph(escape(title), styles["heading"]),
        Paragraph(escape(counts), styles["body"]),
        Paragraph(
            escape(f"Times in {report.tz}. Generated {_at(report.generated, report.tz)}."), styles["small"]
        ),
        Spacer(1, 8),
        Paragraph("Results", styles["section"]),
    ]
    results = [_result_cells(x, report.tz) for x in lines]
    content.append(
        _table(["Acquired", "Test", "Values", "Baseline", "Level", "Verdict", "Reviews"], results,
               [0.09, 0.14, 0.2, 0.12, 0.09, 0.13, 0.23], width, styles)
    )  # fmt: skip
    content += [Spacer(1, 8), Paragraph("Superseded failures", styles["section"])]
    content.append(
        _table(
            ["Acquired", "Test", "Verdict", "Repeated"],
            [[_at_text(x.entry.acquired, report.tz), _test(x.entry), _verdict(x.entry),
              _repeated(x, report.tz)] for x in report.superseded],
            [0.15, 0.25, 0.15, 0.45], width, styles,
        )
    )  # fmt: skip
    content += [Spacer(1, 8), Paragraph("Missed tests", styles["section"])]
    content.append(
        _table(
            ["Test", "Schedule", "Was due"],
            [[analysis.replace("-", " "), schedule, str(day)] for analysis, schedule, day in report.missed],
            [0.3, 0.4, 0.3], width, styles,
        )
    )  # fmt: skip
    content += [Spacer(1, 8), Paragraph("Provenance", styles["section"])]
    content.append(
        _table(
            ["Acquired", "Result", "Source files (SHA-256)", "Software", "Config hash"],
            [_provenance_cells(x, report.tz) for x in lines],
            [0.1, 0.25, 0.35, 0.18, 0.12], width, styles,
        )
    )  # fmt: skip
    doc.build(content)
    return out.getvalue()


def summary_line(report: MonthReport) -> str:
    statuses = defaultdict(int, {s: 0 for s in ("passed", "failed", "error")})
    for x in report.lines:
        statuses[x.entry.status] += 1
    return (
        f"{len(report.lines)} results: {statuses['passed']} passed, {statuses['failed']} failed, "
        f"{statuses['error']} errors; {len(report.superseded)} superseded by a later pass; "
        f"{len(report.missed)} missed; {len(report.pending)} pending review."
    )


def _result_cells(x: Line, tz: dt.tzinfo) -> list[str]:
    e = x.entry
    values = "\n".join(f"{r.key.metric} = {_number(r.value)} {r.unit}".rstrip() for r in x.values)
    # With one metric its name is in the values column already.
    named = (lambda r: f"{r.key.metric}: ") if len(x.values) > 1 else (lambda r: "")
    judged = [(r, r.judgement) for r in x.values if r.judgement]
    baselines = "\n".join(f"{named(r)}{_number(j.baseline)}" for r, j in judged if j.baseline is not None)
    beyond = [f"{named(r)}{j.level}" for r, j in judged if j.level not in (None, "ok")]
    level = "\n".join([e.level or "none", *(beyond if len(x.values) > 1 else [])])
    if e.drift:
        level += f"\n{e.drift}"
    verdict = _verdict(e) + (f"\n{_repeated(x, tz, with_id=False)}" if x.repeated else "")
    return [
        _at_text(e.acquired, tz),
        _test(e),
        values or e.reason,
        baselines,
        level,
        verdict,
        _reviews(x, tz),
    ]


def _reviews(x: Line, tz: dt.tzinfo) -> str:
    shown = [
        f"{DONE[r.decision]} by {r.reviewer}, {_at_text(r.at, tz)}"
        + (f": {r.comment}" if r.comment else "")
        + (f" ({r.rule})" if r.rule else "")
        for r in x.reviews
    ]
    if x.state is queue.State.PENDING:
        shown.append("PENDING REVIEW")
    return "\n".join(shown) or "no review needed"


def _provenance_cells(x: Line, tz: dt.tzinfo) -> list[str]:
    p = x.provenance
    sources = "\n".join(f"{name}: {sha[:SHA_SHOWN]}" for name, sha in sorted(x.entry.sources.items()))
    inputs = p.get("inputs") or {}
    if not sources and isinstance(inputs, dict) and inputs.get("count"):
        sources = f"{inputs['count']} files, combined {str(inputs.get('combined_sha256', ''))[:SHA_SHOWN]}"
    software = (
        f"linac-qa-flows {p['linac-qa-flows']}\npylinac {p.get('pylinac', 'unknown')}"
        if "linac-qa-flows" in p
        else "not recorded"
    )
    return [_at_text(x.entry.acquired, tz), x.entry.result_id, sources or "none listed", software,
            str(p.get("config_hash") or "not recorded")]  # fmt: skip


def _test(e: Entry) -> str:
    return e.analysis.replace("-", " ") + (f"\n{e.variant}" if e.variant else "")


def _verdict(e: Entry) -> str:
    return mark(Status(e.status), e.judged)


def _repeated(x: Line, tz: dt.tzinfo, with_id: bool = True) -> str:
    assert x.repeated is not None
    said = f"repeated: passed on {_at_text(x.repeated.acquired, tz)}"
    return said + (f" ({x.repeated.result_id})" if with_id else "")


def _at_text(text: str | None, tz: dt.tzinfo) -> str:
    return _at(from_text(text), tz) if text else "unknown"


def _at(when: dt.datetime, tz: dt.tzinfo) -> str:
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _number(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"


def _styles() -> dict[str, Any]:
    from reportlab.lib import colors
    from reportlab.lib.styles import ParagraphStyle

    body = ParagraphStyle("body", fontName="Helvetica", fontSize=9, leading=11)
    return {
        "body": body,
        "small": ParagraphStyle(
            "small", parent=body, fontSize=8, leading=10, textColor=colors.HexColor("#424242")
        ),
        "cell": ParagraphStyle("cell", parent=body, fontSize=7.5, leading=9, splitLongWords=1),
        "head": ParagraphStyle("head", parent=body, fontName="Helvetica-Bold", fontSize=7.5, leading=9),
        "heading": ParagraphStyle("heading", parent=body, fontName="Helvetica-Bold", fontSize=15, leading=19),
        # A heading never ends a page apart from its table.
        "section": ParagraphStyle(
            "section", parent=body, fontName="Helvetica-Bold", fontSize=11, leading=15, keepWithNext=1
        ),
    }


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    shares: Sequence[float],
    width: float,
    styles: dict[str, Any],
) -> Any:
    """Every cell a paragraph, so that any text wraps within its column; the header repeats on each page."""
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph, Table, TableStyle

    if not rows:
        return Paragraph("None.", styles["body"])
    data = [[Paragraph(escape(h), styles["head"]) for h in header]]
    data += [
        [Paragraph("<br/>".join(escape(t) for t in cell.split("\n")), styles["cell"]) for cell in row]
        for row in rows
    ]
    table = Table(data, colWidths=[s * width for s in shares], repeatRows=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#bdbdbd")),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return table
