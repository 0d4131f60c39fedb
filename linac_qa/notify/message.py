"""A run's results as e-mail: a plain-text and an HTML part (multipart/alternative) and the failing
reports attached under their real names.

Built with the standard library's `EmailMessage` rather than prefect-email's `email_send_message`,
which builds multipart/mixed (clients show both bodies), drops non-ASCII attachment names and
sends `From: None` without a username (docs/design.md section 8).
"""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid
from pathlib import Path

from linac_qa.history.charts import charted, trend_png
from linac_qa.history.latest import DRIFT, TOLERANCE, Latest, number
from linac_qa.history.latest import title as metric_title
from linac_qa.model import AnalysisResult, Status
from linac_qa.notify.settings import EmailSettings
from linac_qa.records.reporting import acquisition_label, problems_first, report_path
from linac_qa.records.summary import RunSummary

MB = 1_000_000
# Log file names carry patient identifiers: their acquisitions are named by type and date instead.
LOG_ANALYSES = frozenset({"machine-logs"})
VERDICTS = {
    Status.FAILED: "FAILED",
    Status.ERROR: "ERROR",
    Status.PASSED: "passed",
    Status.IGNORED: "ignored",
}
NOT_JUDGED = "NOT JUDGED"
RUN_LINK_TEXT = "This run in Prefect"
NOT_JUDGED_HEADING = "Not judged (analysed, but no pass criterion was applied: configure one to judge these)"
TOLERANCE_HEADING = "Tolerance level (passed, but beyond the tolerance level: please review)"
DRIFT_HEADING = "Drift (still within tolerance, but the trend broke a control-chart rule: an early warning)"
REVIEW_HINT = "python -m flows.review DIR list --pending"
OVERDUE_HEADING = "Overdue tests (each section's schedule: in the config)"
TRENDS_HEADING = "Trends of the failing and drifting metrics"
COLOURS = {
    Status.FAILED: "#b00020",
    Status.ERROR: "#b35c00",
    Status.PASSED: "#1b7f3b",
    Status.IGNORED: "#666",
}


@dataclass(frozen=True)
class Outgoing:
    """One message, ready to be kept in the ledger and sent."""

    kind: str  # digest | analysis | quiet
    subject: str
    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage

    def as_bytes(self) -> bytes:
        # SMTP policy: CRLF line ends, as the wire wants them; every part is 7-bit clean (see _body).
        return self.message.as_bytes(policy=policy.SMTP)


@dataclass(frozen=True)
class Reminders:
    """What a digest reminds of besides the run's results (linac_qa.review.digest): each a line."""

    overdue: tuple[str, ...] = ()  # "TrueBeam1: picket fence overdue by 3 days (...)"
    pending: tuple[str, ...] = ()  # results waiting for a person's review too long
    pending_days: float = 0

    def __bool__(self) -> bool:
        return bool(self.overdue or self.pending)

    def sections(self) -> list[tuple[str, tuple[str, ...]]]:
        waiting = f"Pending review for more than {self.pending_days:g} days ({REVIEW_HINT})"
        return [(OVERDUE_HEADING, self.overdue), (waiting, self.pending)]


NO_REMINDERS = Reminders()


@dataclass(frozen=True)
class Row:
    analysis: str
    acquisition: str
    verdict: Status
    reason: str
    report: str  # where the outputs are: the PDF, relative to the directory, or its absolute path
    attached: bool = False
    not_judged: bool = False  # passed, but no criterion was judged: listed apart, never as a pass

    @property
    def word(self) -> str:
        return NOT_JUDGED if self.not_judged else VERDICTS[self.verdict]


@dataclass
class Attachments:
    """The failing reports that fit in the size limit, and those that did not (listed by path)."""

    files: dict[Path, bytes] = field(default_factory=dict)  # read now: what is listed is what is sent
    too_large: list[Path] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)


def counts(results: Iterable[AnalysisResult]) -> dict[str, int]:
    """The subject's counts; `passed` counts only results that a criterion judged."""
    c = Counter("not_judged" if r.not_judged else r.status for r in results)
    return {
        "failed": c[Status.FAILED],
        "passed": c[Status.PASSED],
        "not_judged": c["not_judged"],
        "errors": c[Status.ERROR],
        "ignored": c[Status.IGNORED],
    }


def qualifying(results: Iterable[AnalysisResult], send: str) -> list[AnalysisResult]:
    """The results a message is about: failures and errors, or every judged result for `all`.
    Results not judged are never among them: they are listed under their own heading."""
    wanted = {
        "failures": {Status.FAILED, Status.ERROR},
        "all": {Status.FAILED, Status.ERROR, Status.PASSED},
    }.get(send, set())
    return problems_first(r for r in results if r.status in wanted and not r.not_judged)


def run_messages(
    summary: RunSummary,
    email: EmailSettings,
    unit: str,
    note: str = "",
    run_link: str = "",
    trends: Sequence[Latest] | None = None,
    reminders: Reminders = NO_REMINDERS,
) -> list[Outgoing]:
    """What a run sends: nothing, one digest, or one message per qualifying analysis. A digest lists
    every result not judged under its own heading; with `send: all` such results are reason enough for
    a message, with `send: failures` they are not (they are no failure). `note`: a sentence after the
    heading (e.g. that the run was interrupted); `run_link`: the run's page in the Prefect UI.
    `trends`: this run's value of each metric it measured, against the record (most urgent first,
    `linac_qa.history.latest.latest_first`); a digest lists those at tolerance level and those
    drifting under their own headings (either is reason enough for a digest: it asks for a look),
    with a trend chart of each failing or drifting metric inline. `reminders`: overdue tests and
    results pending review too long, reason enough for a digest too (without the digest, a message
    of their own); a night with none of these sends nothing."""
    chosen = qualifying(summary.results, email.send)
    unjudged = [r for r in summary.results if r.not_judged]
    trends = list(trends or ()) if email.digest else []
    flagged = [x for x in trends if x.standing in (TOLERANCE, DRIFT)]
    due = chosen + (unjudged if email.send == "all" else [])
    if not (due or flagged or reminders) or not email.enabled:
        return []
    directory = Path(summary.directory)
    if email.digest:
        listed = chosen + unjudged
        counted = summary.results
        return [
            _results_message(
                "digest", summary, listed, counted, email, unit, directory, note, run_link, trends, reminders
            )
        ]
    alone = [_reminder_message(email, unit, reminders)] if reminders else []
    return alone + [
        _results_message("analysis", summary, [r], [r], email, unit, directory, note, run_link, [])
        for r in due
    ]


def _reminder_message(email: EmailSettings, unit: str, reminders: Reminders) -> Outgoing:
    n = len(reminders.overdue) + len(reminders.pending)
    subject = f"{unit} QA: {len(reminders.overdue)} overdue, {len(reminders.pending)} pending review"
    heading = f"{unit} QA: {n} reminder{'' if n == 1 else 's'}."
    msg = _envelope(email, subject)
    _body(msg, heading + "\n\n" + _reminders_text(reminders), _html_page(subject, _reminders_html(reminders)))
    return Outgoing("reminder", subject, _sender(email), tuple(email.recipients), msg)


def _reminders_text(reminders: Reminders) -> str:
    lines: list[str] = []
    for title, items in reminders.sections():
        if items:
            lines += [f"{title}:", "", *(f"  {item}" for item in items), ""]
    return "\n".join(lines)


def _reminders_html(reminders: Reminders) -> str:
    e = html.escape
    return "".join(
        f"<h3>{e(title)}</h3><ul>{''.join(f'<li>{e(item)}</li>' for item in items)}</ul>"
        for title, items in reminders.sections()
        if items
    )


def quiet_message(
    email: EmailSettings, unit: str, directory: str, last: dt.datetime, now: dt.datetime
) -> Outgoing:
    days = (now - last).total_seconds() / 86400
    subject = f"{unit} QA: no new acquisitions for {days:.0f} days"
    since = _local(last)
    lines = [
        f"No new QA acquisition has arrived in {directory} since {since} ({days:.1f} days;"
        f" the warning threshold is email.quiet-days: {email.quiet_days:g}).",
        "A broken export or an unmounted share looks exactly like a quiet night: please check that the"
        " linac's images and logs still reach this folder.",
        "This warning is sent once; the next new acquisition resets it.",
    ]
    text = "\n\n".join(lines) + "\n"
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    msg = _envelope(email, subject)
    _body(msg, text, _html_page(subject, body))
    return Outgoing("quiet", subject, _sender(email), tuple(email.recipients), msg)


def plan_attachments(results: Sequence[AnalysisResult], directory: Path, max_bytes: int) -> Attachments:
    """Failing reports in order (the digest's order) while their total fits; the rest by path."""
    plan = Attachments()
    total = 0
    for r in results:
        if r.status is not Status.FAILED:
            continue
        pdf = report_path(r, directory)
        if pdf is None:
            continue
        try:
            size = pdf.stat().st_size
            if total + size > max_bytes:
                plan.too_large.append(pdf)
                continue
            plan.files[pdf] = pdf.read_bytes()
        except OSError:
            plan.missing.append(pdf)
            continue
        total += size
    return plan


def report_message(
    email: EmailSettings, machine: str, month: str, counts: str, files: Sequence[Path]
) -> Outgoing:
    """The monthly report (PDF) and its QuAAC export, attached, to the configured recipients."""
    subject = f"{machine} QA report for {month}"
    where = files[0].parent if files else ""
    lines = [f"{machine}: the QA report for {month}. {counts}", f"Attached, and kept in {where}:"]
    lines += [f"  {f.name}" for f in files]
    msg = _envelope(email, subject)
    page = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    _body(msg, "\n".join(lines) + "\n", _html_page(subject, page))
    for f in files:
        subtype = "pdf" if f.suffix == ".pdf" else "json"
        msg.add_attachment(f.read_bytes(), maintype="application", subtype=subtype, filename=f.name)
    return Outgoing("report", subject, _sender(email), tuple(email.recipients), msg)


def acquisition_name(result: AnalysisResult, *, with_date: bool = True) -> str:
    """What a physicist calls it, with no patient identifiers: a log is named by its type and date."""
    when = result.acquired.strftime("%Y-%m-%d %H:%M") if result.acquired else None
    if result.analysis in LOG_ANALYSES:
        return f"{result.model or 'machine log'} {when or '(date unknown)'}"
    label = acquisition_label(result)
    return f"{label} ({when})" if when and with_date else label


# --------------------------------------------------------------------------- building


def _results_message(
    kind: str,
    summary: RunSummary,
    listed: list[AnalysisResult],
    counted: list[AnalysisResult],
    email: EmailSettings,
    unit: str,
    directory: Path,
    note: str,
    run_link: str,
    trends: list[Latest],
    reminders: Reminders = NO_REMINDERS,
) -> Outgoing:
    n = counts(counted)
    subject = email.subject.format(unit=unit, counts=count_words(n), **n)
    if kind == "analysis":  # one message per analysis: say which in the subject, the inbox's list view
        subject += f" ({listed[0].analysis}: {acquisition_name(listed[0], with_date=False)})"
    attachments = plan_attachments(listed, directory, int(email.attachments_max_mb * MB))
    attached = set(attachments.files)
    rows = [_row(r, directory, attached) for r in listed]
    sections = [
        ("", [r for r in rows if not r.not_judged]),
        (NOT_JUDGED_HEADING, [r for r in rows if r.not_judged]),
    ]
    heading = (
        f"{unit} QA, run of {_local(summary.started)}: {_count_line(n)}. Results in {summary.directory}."
        + (f" {note}" if note else "")
    )
    unlisted = _unlisted_line(n, email.send) if kind == "digest" else ""
    levels = [(TOLERANCE_HEADING, [x for x in trends if x.standing == TOLERANCE])]
    levels.append((DRIFT_HEADING, [x for x in trends if x.standing == DRIFT]))
    text = _text(heading, run_link, sections, unlisted, attachments, email.attachments_max_mb)
    text += _levels_text(levels)
    if reminders:
        text += "\n" + _reminders_text(reminders)
    msg = _envelope(email, subject)
    # Content-IDs in the sender's domain, as the Message-ID's (RFC 2392: globally unique).
    domain = msg["Message-ID"].rpartition("@")[2].rstrip(">")
    images = [(x, make_msgid(domain=domain), trend_png(x)) for x in charted(trends)]
    page = _html(heading, run_link, sections, unlisted, attachments, email.attachments_max_mb)
    page += _levels_html(levels, [(x, cid) for x, cid, _ in images])
    page += _reminders_html(reminders)
    _body(msg, text, _html_page(subject, page))
    if images:
        # multipart/related inside the alternative: the HTML and the images it shows (cid: links),
        # so clients show them inline and never as attachments.
        html_part = msg.get_body(("html",))
        assert isinstance(html_part, EmailMessage)
        for x, cid, png in images:
            html_part.add_related(png, maintype="image", subtype="png", cid=cid, filename=_png_name(x))
    for pdf, data in attachments.files.items():
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=pdf.name)
    return Outgoing(kind, subject, _sender(email), tuple(email.recipients), msg)


def _row(result: AnalysisResult, directory: Path, attached: set[Path]) -> Row:
    pdf = report_path(result, directory)
    if pdf is None:
        report = "-"
    elif pdf.is_relative_to(directory):
        report = pdf.relative_to(directory).as_posix()
    else:
        report = str(pdf)
    return Row(
        analysis=result.analysis or "-",
        acquisition=acquisition_name(result),
        verdict=result.status,
        reason=result.reason,
        report=report,
        attached=pdf in attached,
        not_judged=result.not_judged,
    )


def count_words(n: dict[str, int]) -> str:
    """The subject's `{counts}`: failed, errors and passed, even when none; not judged when any."""
    errors = f"{n['errors']} error{'' if n['errors'] == 1 else 's'}"
    unjudged = f", {n['not_judged']} not judged" if n["not_judged"] else ""
    return f"{n['failed']} failed, {errors}, {n['passed']} passed{unjudged}"


def _count_line(n: dict[str, int]) -> str:
    return f"{count_words(n)}, {n['ignored']} ignored"


def _unlisted_line(n: dict[str, int], send: str) -> str:
    parts = [f"{n['passed']} passed"] if send == "failures" and n["passed"] else []
    if n["ignored"]:
        parts.append(f"{n['ignored']} ignored (not QA data)")
    return f"Not listed: {' and '.join(parts)}." if parts else ""


Sections = list[tuple[str, list[Row]]]  # (heading, rows); an empty heading for the main list


def _text(
    heading: str, run_link: str, sections: Sections, unlisted: str, att: Attachments, max_mb: float
) -> str:
    lines = [heading, ""] + ([f"{RUN_LINK_TEXT}: {run_link}", ""] if run_link else [])
    for title, rows in sections:
        if title and rows:
            lines += [f"{title}:", ""]
        for row in rows:
            lines.append(f"{row.word:<7} {row.analysis}  {row.acquisition}")
            lines.append(f"        {row.reason}")
            lines.append(f"        report: {row.report}{' (attached)' if row.attached else ''}")
            lines.append("")
    if unlisted:
        lines += [unlisted, ""]
    lines += _leftover_lines(att, max_mb)
    return "\n".join(lines).rstrip() + "\n"


def _leftover_lines(att: Attachments, max_mb: float) -> list[str]:
    lines = []
    if att.too_large:
        lines.append(f"Not attached (over the {max_mb:g} MB limit of email.attachments-max-mb):")
        lines += [f"  {p}" for p in att.too_large]
    if att.missing:
        lines.append("Reports that could not be read for attaching:")
        lines += [f"  {p}" for p in att.missing]
    return lines


def _html(
    heading: str, run_link: str, sections: Sections, unlisted: str, att: Attachments, max_mb: float
) -> str:
    e = html.escape
    head = "".join(
        f"<th align=left>{h}</th>" for h in ("analysis", "acquisition", "verdict", "reason", "report")
    )
    parts = [f"<p>{e(heading)}</p>"]
    if run_link:
        parts.append(f'<p><a href="{e(run_link)}">{RUN_LINK_TEXT}</a></p>')
    for title, rows in sections:
        if not rows:
            continue
        if title:
            parts.append(f"<h3>{e(title)}</h3>")
        cells = "".join(
            "<tr>"
            f"<td>{e(r.analysis)}</td><td>{e(r.acquisition)}</td>"
            f'<td style="color:{COLOURS[Status.IGNORED] if r.not_judged else COLOURS[r.verdict]};'
            f'font-weight:bold">{r.word}</td>'
            f"<td>{e(r.reason)}</td><td>{e(r.report)}{' (attached)' if r.attached else ''}</td>"
            "</tr>"
            for r in rows
        )
        parts.append(
            f'<table border=1 cellpadding=4 cellspacing=0 style="border-collapse:collapse">'
            f"<tr>{head}</tr>{cells}</table>"
        )
    if unlisted:
        parts.append(f"<p>{e(unlisted)}</p>")
    leftover = _leftover_lines(att, max_mb)
    if leftover:
        parts.append("<pre>" + e("\n".join(leftover)) + "</pre>")
    return "".join(parts)


Levels = list[tuple[str, list[Latest]]]  # (heading, metrics)


def _levels_text(levels: Levels) -> str:
    lines = []
    for heading, items in levels:
        if items:
            lines += ["", f"{heading}:", ""]
            lines += [f"  {_metric_line(x)}" for x in items]
    return "\n".join(lines) + "\n" if lines else ""


def _metric_line(x: Latest) -> str:
    p, unit = x.point, x.series.unit
    drift = f"; {p.drift}" if p.drift else ""
    return (
        f"{metric_title(x.series.key)}: {number(p.value, unit)}, baseline {number(p.baseline, unit)}"
        f", change {x.change}, {p.acquired.astimezone():%Y-%m-%d %H:%M}{drift}"
    )


def _levels_html(levels: Levels, images: list[tuple[Latest, str]]) -> str:
    e = html.escape
    parts = []
    for heading, items in levels:
        if items:
            parts.append(f"<h3>{e(heading)}</h3><ul>")
            parts += [f"<li>{e(_metric_line(x))}</li>" for x in items]
            parts.append("</ul>")
    if images:
        parts.append(f"<h3>{e(TRENDS_HEADING)}</h3>")
        parts += [
            f'<p><img src="cid:{e(cid.strip("<>"))}" alt="{e(metric_title(x.series.key))}: {e(x.word)}"></p>'
            for x, cid in images
        ]
    return "".join(parts)


def _png_name(x: Latest) -> str:
    raw = f"trend {metric_title(x.series.key)}.png"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in raw)


def _html_page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
        f'<body style="font-family:sans-serif">{body}</body></html>\n'
    )


def _envelope(email: EmailSettings, subject: str) -> EmailMessage:
    msg = EmailMessage()
    sender = _sender(email)
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(email.recipients)
    msg["Date"] = format_datetime(dt.datetime.now().astimezone())
    # The sender's domain, not socket.getfqdn(): that can wait for DNS on a clinic network.
    domain = getaddresses([sender])[0][1].rpartition("@")[2] or "localhost"
    msg["Message-ID"] = make_msgid(domain=domain)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies to a robot
    return msg


def _body(msg: EmailMessage, text: str, page: str) -> None:
    # Quoted-printable keeps every part 7-bit, so any relay takes it (no 8BITMIME needed).
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(page, subtype="html", cte="quoted-printable")


def _sender(email: EmailSettings) -> str:
    if not email.sender:
        raise ValueError("email.from is not set")
    return email.sender


def _local(when: dt.datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M %Z")
