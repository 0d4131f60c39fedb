"""`python -m flows.report DIR --month 2024-03`: each machine's monthly QA report (linac_qa.review):
`DIR/qa-report-<machine>-<YYYY-MM>.pdf` and its QuAAC export beside it, e-mailed with --email. No
Prefect flow: a plain command (the `monthly-report` deployment runs the same on the 1st)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.cli import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, _load

if TYPE_CHECKING:
    from linac_qa.config import Settings

HELP = """exit status:
  0  written (and e-mailed, with --email)
  1  written, but the e-mail could not be sent (it is kept: the next run sends it)
  2  bad usage or configuration, DIR not found, or no machine to report on

examples:
  python -m flows.report /srv/qa/truebeam1 --month 2024-03 --config truebeam1.yml
  linac-qa report /srv/qa/truebeam1 --machine TrueBeam1 --timezone Europe/Berlin --email"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m flows.report",
        description="The monthly QA report of each machine in DIR: every result acquired in the month "
        "(values, baselines, levels, verdict), its reviews, the failures a later pass superseded, the "
        "tests the config's schedules say were missed, and each result's source files (SHA-256), "
        "software versions and config hash; a PDF, with the month's QuAAC export beside it.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("directory", metavar="DIR", help="the processed folder")
    p.add_argument("--month", metavar="YYYY-MM", help="the month to report (default: the previous one)")
    p.add_argument("--machine", help="only this machine (default: the config's unit, else every machine)")
    p.add_argument("--config", metavar="FILE", help="YAML config (its schedules and e-mail settings)")
    p.add_argument("--timezone", metavar="ZONE", help="IANA time zone of the month and times (default: UTC)")
    p.add_argument("--email", action="store_true", help="e-mail the reports to email.recipients")
    return p


def main(argv: list[str] | None = None) -> int:
    from linac_qa.review import monthly

    args = parser().parse_args(argv)
    try:
        tz = monthly.timezone(args.timezone)
    except (ValueError, KeyError):  # zoneinfo: an unknown zone is a KeyError
        print(f"error: --timezone: unknown time zone {args.timezone!r}; e.g. Europe/Berlin", file=sys.stderr)
        return EXIT_USAGE
    now = dt.datetime.now(tz)
    month = args.month or monthly.previous_month(now)
    try:
        monthly.month_bounds(month, tz)
    except ValueError as exc:
        print(f"error: --month: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if (loaded := _load(args)) is None:
        return EXIT_USAGE
    settings, root = loaded
    return report(root, settings, month, args.machine, now, tz, args.email)


def report(
    root: Path,
    settings: Settings,
    month: str,
    machine: str | None,
    now: dt.datetime,
    tz: dt.tzinfo,
    email: bool,
) -> int:
    from linac_qa.notify.send import MailError
    from linac_qa.review import publish
    from linac_qa.review.monthly import summary_line

    machines = publish.machines_of(root, settings, machine)
    if not machines:
        print(f"error: no machine to report on: {root} has no reviewed results yet, and the config "
              "names no unit (give --machine)", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    done = publish.publish(root, settings, month, machines, now, tz)
    for p in done:
        print(f"{p.files[0]}: {summary_line(p.report)}")
        for extra in p.files[1:]:
            print(f"{extra}: the QuAAC export of the same month")
    if not email:
        return EXIT_OK
    if not settings.email.enabled:
        print(f"not e-mailed: {settings.email.off_reason}", file=sys.stderr)
        return EXIT_OK
    try:
        sent = publish.mail(root, settings, done, f"report-{uuid.uuid4().hex[:12]}", _Log())
    except MailError as exc:
        print(f"error: the report e-mail was not sent (kept for the next run): {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"e-mailed {sent} message(s) to {', '.join(settings.email.recipients)}")
    return EXIT_OK


class _Log:
    def info(self, msg: str, *args: Any) -> None:
        print(msg % args, file=sys.stderr)

    warning = error = info


if __name__ == "__main__":
    raise SystemExit(main())
