"""What every output says it is: the report's own first page (verdict, reason, provenance), merged
before pylinac's pages; the title line on the PNG; the header of the `.txt`.

pylinac draws a report's `metadata` and `notes` over its own results at fixed places, so the
verdict and its provenance are set here, on a page of ours, with reportlab's platypus so that every
value wraps within the page.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import cm
from reportlab.platypus import KeepInFrame, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from linac_qa.model import Metric, Status
from linac_qa.records.reporting import MARKS, NOT_JUDGED

AUTHOR = "linac-qa-flows"
MAX_FILES_LISTED = 12  # a CT series has hundreds: the rest is counted ("and 180 more")

# The verdict word's colour: green a pass, red a failure, amber an error, grey nothing judged.
VERDICT_COLOURS = {
    MARKS[Status.PASSED]: "#1b7f3b",
    MARKS[Status.FAILED]: "#c62828",
    MARKS[Status.ERROR]: "#b26a00",
    NOT_JUDGED: "#616161",
    MARKS[Status.IGNORED]: "#616161",
}


@dataclass(frozen=True)
class ReportFacts:
    """What our page, the PNG's title and the `.txt`'s header say about one acquisition."""

    analysis: str
    model: str | None
    acquisition: str
    unit: str
    machine: str | None
    acquired: dt.datetime | None
    files: Sequence[str]
    verdict: str  # the word for people: reporting.mark()
    reason: str
    metrics: dict[str, Metric] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)  # the `.json`'s, as the runner makes it


def acquired_text(when: dt.datetime | None) -> str:
    """With its UTC offset when the acquisition's time zone is known."""
    return when.isoformat(sep=" ", timespec="minutes") if when else "unknown"


def title_line(facts: ReportFacts) -> str:
    """One line naming the result: acquisition, unit, date, verdict."""
    return " · ".join((facts.acquisition, facts.unit, acquired_text(facts.acquired), facts.verdict))


def text_header(facts: ReportFacts) -> str:
    """What the `.txt` starts with, before pylinac's results."""
    return f"{facts.analysis} QA: {title_line(facts)}\n\nVerdict: {facts.verdict}\n{facts.reason}\n\n"


def pdf_title(facts: ReportFacts) -> str:
    return f"{facts.analysis} QA report: {facts.acquisition} — {facts.verdict}"


# --------------------------------------------------------------------------- the PDF


def write_pdf(facts: ReportFacts, pylinac_pdf: bytes, target: Path) -> None:
    """Our page, then pylinac's pages as it drew them, with the document's title, author and subject."""
    theirs = PdfReader(io.BytesIO(pylinac_pdf))
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(first_page(facts, len(theirs.pages)))))
    writer.append(theirs)
    writer.add_metadata(
        {
            "/Title": pdf_title(facts),
            "/Author": AUTHOR,
            "/Subject": f"{facts.verdict}: {facts.reason}",
            "/Creator": AUTHOR,
        }
    )
    with open(target, "wb") as fp:
        writer.write(fp)


_SIDE_MARGIN = 2 * cm
_BODY = ParagraphStyle("body", fontName="Helvetica", fontSize=10, leading=13)
_SMALL = ParagraphStyle("small", parent=_BODY, fontSize=9, leading=11, textColor=colors.HexColor("#424242"))
_LABEL = ParagraphStyle("label", parent=_BODY, fontName="Helvetica-Bold", fontSize=9, leading=11)
_CELL = ParagraphStyle("cell", parent=_BODY, fontSize=9, leading=11)
_HEADING = ParagraphStyle("heading", parent=_BODY, fontName="Helvetica-Bold", fontSize=15, leading=19)
_SECTION = ParagraphStyle("section", parent=_BODY, fontName="Helvetica-Bold", fontSize=11, leading=14)
_REASON = ParagraphStyle("reason", parent=_BODY, fontSize=11, leading=14, leftIndent=10, bulletIndent=0)


def first_page(facts: ReportFacts, pylinac_pages: int) -> bytes:
    """One A4 page: what was analysed, the verdict large and coloured, the reason, then the facts.
    Whatever its length, it stays one page: an overlong page is shrunk to fit, never cut."""
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=_SIDE_MARGIN,
        rightMargin=_SIDE_MARGIN,
        topMargin=1.8 * cm,
        bottomMargin=1.8 * cm,
        title=pdf_title(facts),
        author=AUTHOR,
    )
    colour = colors.HexColor(VERDICT_COLOURS.get(facts.verdict, "#000000"))
    verdict_style = ParagraphStyle(
        "verdict", parent=_BODY, fontName="Helvetica-Bold", fontSize=36, leading=42, textColor=colour
    )
    content: list[Any] = [
        Paragraph(escape(f"{AUTHOR} · {facts.analysis} QA report"), _SMALL),
        Spacer(1, 4),
        Paragraph(escape(facts.acquisition), _HEADING),
        Spacer(1, 10),
        Paragraph(escape(facts.verdict), verdict_style),
        Spacer(1, 4),
        # One criterion a line: the reason joins them with "; ".
        *(Paragraph(escape(part), _REASON, bulletText="•") for part in _reason_parts(facts.reason)),
        Spacer(1, 14),
        _table(_facts_rows(facts), label_width=4.6 * cm),
    ]
    if facts.metrics:
        content += [
            Spacer(1, 12),
            Paragraph("Measured", _SECTION),
            Spacer(1, 4),
            _table([(name, _metric(value)) for name, value in facts.metrics.items()], label_width=7 * cm),
        ]
    pages = "page 2" if pylinac_pages == 1 else f"pages 2 to {pylinac_pages + 1}"
    # No pylinac model: the pages that follow are the analysis's own (MPC: a chart of Varian's rows).
    follows = "pylinac's own report follows" if facts.model else "The measured rows follow as a chart"
    content += [Spacer(1, 12), Paragraph(escape(f"{follows} ({pages})."), _SMALL)]
    doc.build([KeepInFrame(0, 0, content, mode="shrink")])
    return out.getvalue()


def _reason_parts(reason: str) -> list[str]:
    return [part.strip() for part in reason.split("; ") if part.strip()] or ["(no reason given)"]


def _facts_rows(facts: ReportFacts) -> list[tuple[str, str]]:
    prov = facts.provenance
    inputs = prov.get("inputs", {})
    unit = facts.unit
    if facts.machine and facts.machine != facts.unit:
        unit += f" (machine in the files: {facts.machine})"
    return [
        ("Analysis", facts.analysis),
        ("Model", facts.model or "unknown"),
        ("Unit / machine", unit),
        ("Acquired", acquired_text(facts.acquired)),
        (f"Source files ({len(facts.files)})", _files_text(facts.files)),
        ("Inputs SHA-256 (combined)", str(inputs.get("combined_sha256", "unknown"))),
        ("Software", f"linac-qa-flows {prov.get('linac-qa-flows')}, pylinac {prov.get('pylinac')}"),
        ("Config hash", str(prov.get("config_hash", "unknown"))),
        ("Analysed at", str(prov.get("analysed", "unknown"))),
    ]


def _files_text(files: Sequence[str]) -> str:
    shown = list(files[:MAX_FILES_LISTED])
    more = len(files) - len(shown)
    return "\n".join(shown + ([f"and {more} more"] if more else []))


def _metric(value: Metric) -> str:
    return "not given" if value is None else str(value)


def _table(rows: list[tuple[str, str]], label_width: float) -> Table:
    table = Table(
        [[Paragraph(escape(label), _LABEL), Paragraph(_lines(value), _CELL)] for label, value in rows],
        colWidths=[label_width, A4[0] - 2 * _SIDE_MARGIN - label_width],
        hAlign="LEFT",
    )
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -2), 0.25, colors.HexColor("#bdbdbd")),
                ("TOPPADDING", (0, 0), (-1, -1), 3),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table


def _lines(text: str) -> str:
    return "<br/>".join(escape(line) for line in text.split("\n"))


# --------------------------------------------------------------------------- the PNG


def titled_png(png: bytes, line: str) -> bytes:
    """The picture with a white band above it holding `line`, wrapped to the picture's width."""
    with Image.open(io.BytesIO(png)) as picture:
        picture.load()
        image = picture.convert("RGB") if picture.mode not in ("RGB", "RGBA") else picture.copy()
        dpi = picture.info.get("dpi")
    size = max(14, image.width // 40)
    font = ImageFont.load_default(size=size)
    margin = size // 2
    lines = _wrapped(line, font, image.width - 2 * margin)
    band = len(lines) * round(size * 1.3) + 2 * margin
    titled = Image.new(image.mode, (image.width, image.height + band), "white")
    titled.paste(image, (0, band))
    draw = ImageDraw.Draw(titled)
    for n, text in enumerate(lines):
        draw.text((margin, margin + n * round(size * 1.3)), text, fill="black", font=font)
    out = io.BytesIO()
    titled.save(out, format="PNG", **({"dpi": dpi} if dpi else {}))
    return out.getvalue()


def _wrapped(text: str, font: Any, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split(" "):
        trial = f"{lines[-1]} {word}" if lines else word
        if lines and font.getlength(trial) <= width:
            lines[-1] = trial
        else:
            lines.append(word)
    return lines
