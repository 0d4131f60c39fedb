"""The command line of `python -m flows.process` (docs/design.md section 2).

Standard output belongs to the result: with `--json` exactly one JSON document, otherwise one
verdict line per acquisition. pylinac and Prefect print and log freely, and spawned workers inherit
our file descriptors, so file descriptor 1 is pointed at standard error for the whole run and the
result is written to a private copy of the original standard output.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import gc
import json
import logging
import os
import sys
from collections import Counter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from linac_qa.config import Settings
    from linac_qa.records.summary import RunSummary

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_BUSY, EXIT_NOT_DONE = 0, 1, 2, 3, 4

EXIT_STATUSES = """exit status:
  0  everything analysed passed, nothing was new, or a dry run
  1  a result failed or is an error (QA problems)
  2  bad usage or configuration, or DIR not found (nothing done)
  3  another run holds DIR's lock
  4  the run could not be done: the Prefect API could not be reached (PREFECT_API_URL),
     Prefect's temporary server did not start, or no analysis worker could start; one line on
     standard error says why and, with --json, the document has a run-level "error" and no
     results. The temporary server may take 180 s to start
     (PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS overrides) and is tried twice.
  130  stopped by Ctrl-C (143: by SIGTERM); what had finished is recorded, the rest is analysed
     by the next run

examples:
  python -m flows.process /srv/qa/truebeam1 --config truebeam1.yml --dry-run
  linac-qa process /srv/qa/truebeam1 --config truebeam1.yml --json > summary.json"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m flows.process",
        description="Analyse every new QA acquisition under DIR with pylinac; results go next to the data.",
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "directory", nargs="?", metavar="DIR", help="folder to process (default: general.directory)"
    )
    p.add_argument("--config", metavar="FILE", help="YAML config; overrides only what it names")
    p.add_argument("--force", action="store_true", help="re-analyse what was already analysed")
    p.add_argument(
        "--retry-errors",
        action="store_true",
        help="analyse again every file whose last result was an error (by default an error is retried "
        "only when the file, the config, pylinac or linac-qa-flows changed)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="show what would be analysed, and as what; change nothing"
    )
    p.add_argument("--json", action="store_true", help="print exactly one JSON summary on standard output")
    return p


def watch_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m flows.watch",
        description="Watch DIR (and general.sources): analyse each new acquisition once it has settled. "
        "Ctrl-C stops after the analyses in progress.",
        epilog="""exit status:
  0  stopped (Ctrl-C or SIGTERM), after the analyses in progress
  2  bad usage or configuration, or DIR not found
  3  DIR is already watched or processed by another run
  4  the Prefect API could not be reached or its temporary server did not start
     (see python -m flows.process -h)

example:
  linac-qa watch /srv/qa/truebeam1 --config truebeam1.yml""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("directory", nargs="?", metavar="DIR", help="folder to watch (default: general.directory)")
    p.add_argument("--config", metavar="FILE", help="YAML config; overrides only what it names")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = _claim_stdout()
    loaded = _load(args)
    if loaded is None:
        return EXIT_USAGE
    settings, root = loaded
    if args.dry_run:
        return _dry_run(root, settings, args, out)
    started = dt.datetime.now(dt.UTC)
    if (busy := _busy(root)) is not None:
        return busy
    if (unavailable := _connect()) is not None:
        if args.json:
            _write_not_done(out, root, settings, started, unavailable)
        return EXIT_NOT_DONE
    from prefect.exceptions import CancelledRun

    from flows.process import process_directory
    from flows.stop_signals import StopSignals, end_as_stopped

    with TerminalProgress(sys.stderr if args.json else out) as progress:
        try:
            with StopSignals() as stops:
                summary = cast(
                    "RunSummary",
                    process_directory(
                        str(root), args.config, args.force, listener=progress, retry_errors=args.retry_errors
                    ),
                )
        except CancelledRun:  # stopped: the run is Cancelled in Prefect, and said so on stderr
            summary = None
        except _refusals() as exc:
            return _refused(exc)
        except _cannot_analyse() as exc:  # no worker process starts: nothing could be analysed
            print(f"error: the run could not be done: {exc}", file=sys.stderr)
            if args.json:
                _write_not_done(out, root, settings, started, str(exc))
            return EXIT_NOT_DONE
    if summary is None:
        end_as_stopped(stops.received)
    if args.json:
        out.write(json.dumps(summary.model_dump(mode="json"), ensure_ascii=False) + "\n")
    else:
        print(_closing_line(summary), file=out)
    out.flush()
    return summary.exit_code


def watch_main(argv: list[str] | None = None) -> int:
    args = watch_parser().parse_args(argv)
    out = _claim_stdout()
    if (loaded := _load(args)) is None:
        return EXIT_USAGE
    if (busy := _busy(loaded[1])) is not None:
        return busy
    if _connect() is not None:
        return EXIT_NOT_DONE
    from prefect.exceptions import CancelledRun

    from flows.stop_signals import end_as_stopped
    from flows.watch import watch_directory

    try:
        watch_directory(str(loaded[1]), args.config, listener=TerminalProgress(out))
    except _refusals() as exc:
        return _refused(exc)
    except CancelledRun:  # a second Ctrl-C, or SIGTERM: the run is Cancelled in Prefect
        end_as_stopped()
    return EXIT_OK


def _connect() -> str | None:
    """None once the Prefect API answers; else why not, said on standard error. Before the flow
    starts, so that a run that cannot be done writes nothing into DIR."""
    from flows.prefect_api import ApiUnavailable, connect

    try:
        connect()
    except ApiUnavailable as exc:
        print(f"error: the run could not be done: {exc}", file=sys.stderr)
        return str(exc)
    return None


def _write_not_done(out: IO[str], root: Path, settings: Settings, started: dt.datetime, reason: str) -> None:
    """The document of a run that could not be done: the run-level `error`, no results."""
    from linac_qa.records.summary import RunSummary

    finished = dt.datetime.now(dt.UTC)
    doc = RunSummary(
        directory=str(root), unit=settings.general.unit, started=started, finished=finished, error=reason
    )
    out.write(doc.model_dump_json() + "\n")
    out.flush()


def _refusals() -> tuple[type[Exception], ...]:
    """What ends a run before it analyses anything: another run holds DIR (exit 3), or the Dask
    cluster of the config cannot be reached (exit 2). Evaluated only when an exception is raised."""
    from linac_qa.execution.dask_pool import DaskUnavailable
    from linac_qa.run import DirectoryBusy

    return DirectoryBusy, DaskUnavailable


def _cannot_analyse() -> tuple[type[Exception], ...]:
    from linac_qa.execution.local_pool import WorkersUnavailable

    return (WorkersUnavailable,)


def _busy(root: Path) -> int | None:
    """Exit 3 when another run holds DIR, said in one line before any flow run starts."""
    from linac_qa.run import DirectoryBusy, check_not_busy

    try:
        check_not_busy(root)
    except DirectoryBusy as exc:
        return _refused(exc)
    return None


def _refused(exc: Exception) -> int:
    from linac_qa.run import DirectoryBusy

    print(f"error: {exc}", file=sys.stderr)
    return EXIT_BUSY if isinstance(exc, DirectoryBusy) else EXIT_USAGE


def _load(args: argparse.Namespace) -> tuple[Settings, Path] | None:
    """The settings and the directory, checked before any work; None after saying what is wrong."""
    # Registered first, so run last: the interpreter's final garbage collection of a run's heap
    # (Prefect, pydantic, SQLAlchemy) took 7 s of a loaded machine at every exit, a stop included;
    # frozen, the objects are left to the operating system.
    atexit.register(gc.freeze)
    os.environ.setdefault("MPLBACKEND", "Agg")
    # A clinic network has no route out: the temporary server's telemetry would only log an error.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from linac_qa.config import ConfigError, load_settings
    from linac_qa.run import UsageError, resolve_directory

    try:
        settings = load_settings(args.config)
        return settings, resolve_directory(args.directory, settings)
    except (ConfigError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


class TerminalProgress:
    """One verdict line per result and, on a terminal, a progress bar below them. Both go through one
    rich console when the lines go to a terminal, so a verdict line is printed above the bar, never
    into it; otherwise the bar is on standard error (if that is a terminal) and the lines are plain."""

    def __init__(self, lines: IO[str]):
        self.lines = lines
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> TerminalProgress:
        _verdicts_said_once(True)
        screen = self.lines if self.lines.isatty() else sys.stderr if sys.stderr.isatty() else None
        if screen is not None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            columns = (TextColumn("analysing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            console = Console(file=screen, soft_wrap=True, highlight=False, markup=False, emoji=False)
            # Prefect's log lines go to standard error: through the bar's console (printed above
            # it) only when that is the same screen, else where standard error was sent.
            self.bar = Progress(
                *columns,
                console=console,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=sys.stderr.isatty(),
            )
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
        _verdicts_said_once(False)

    def planned(self, total: int) -> None:
        if self.bar is not None:
            self.task = self.bar.add_task("analysing", total=total)

    def finished(self, result: Any) -> None:
        from linac_qa.records.reporting import verdict_line

        line = verdict_line(result)
        if self.bar is not None and self.bar.console.file is self.lines:
            self.bar.console.print(line)
        else:
            print(line, file=self.lines, flush=True)
        if self.bar is not None and self.task is not None:
            self.bar.advance(self.task)


def _verdict_record(record: logging.LogRecord) -> bool:
    from flows.tasks import VERDICT

    return not getattr(record, VERDICT, False)


def _verdicts_said_once(on: bool) -> None:
    """Each verdict once on the terminal: the line printed here, without Prefect's log line of the
    same verdict (which the UI and serve's output keep: only the console's copy is filtered)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            (handler.addFilter if on else handler.removeFilter)(_verdict_record)


# How many files of a set the dry run's text names before "and N more".
DRY_RUN_FILES_SHOWN = 5


def _dry_run(root: Path, settings: Settings, args: argparse.Namespace, out: IO[str]) -> int:
    """Discovery and classification only: no Prefect, no workers, nothing written. Its `--json` is
    a run's document (what a run would record without analysing: ignored files and errors in
    `results`, the skipped counts) with `dry_run: true` and the `plan` of every set."""
    from linac_qa.grouping.plan import plan_directory
    from linac_qa.records.ledger import STATE_DIR, Ledger
    from linac_qa.records.summary import RunSummary, skipped_counts, skipped_phrase

    started = dt.datetime.now(dt.UTC)
    ledger_file = root / STATE_DIR / "ledger.sqlite"
    known = Ledger(ledger_file).known() if ledger_file.exists() else {}
    planned = plan_directory(root, settings, known, force=args.force, retry_errors=args.retry_errors)
    found, work = planned.found, planned.plan
    rows: list[dict[str, Any]] = [
        {
            "analysis": a.analysis,
            "files": list(a.files),
            "would": "analyse",
            "variant": a.variant,
            # What routed each file: a rule, or a keyword and where it was found.
            "routed": {f: work.routed.get(f, "") for f in a.files},
        }
        for a in work.acquisitions
    ] + [
        {"analysis": r.analysis, "files": r.files, "would": r.status.value, "reason": r.reason}
        for r in work.decided
    ]
    for row in rows:
        retried = sorted({found.retried[f] for f in row["files"] if f in found.retried})
        if retried:
            row["retry"] = "; ".join(retried)
    summary = RunSummary(
        directory=str(root),
        unit=settings.general.unit,
        started=started,
        finished=dt.datetime.now(dt.UTC),
        results=list(work.decided),
        skipped=skipped_counts(planned.skipped()),
    )
    if args.json:
        doc = {**summary.model_dump(mode="json"), "dry_run": True, "plan": rows}
        out.write(json.dumps(doc, ensure_ascii=False, default=str) + "\n")
    else:
        for row in rows:
            what = row["analysis"] or "-"
            tail = f": {row['reason']}" if "reason" in row else ""
            tail += f" (an earlier error, retried: {row['retry']})" if "retry" in row else ""
            files = row["files"]
            named = ", ".join(files[:DRY_RUN_FILES_SHOWN])
            more = len(files) - DRY_RUN_FILES_SHOWN
            named += f", and {more} more" if more > 0 else ""
            print(f"{row['would']:<8} {what:<15} {named}{tail}", file=out)
            by_reason = Counter(row.get("routed", {}).values())
            for reason, n in by_reason.most_common():
                print(f"{'':<25}{n} file{'s' if n != 1 else ''}: {reason}", file=out)
        skipped = sum(summary.skipped.values())
        why = skipped_phrase(summary.skipped)
        print(
            f"dry run: {len(work.acquisitions)} to analyse, {len(work.decided)} not analysable;"
            f" {skipped} skipped{f' ({why})' if why else ''}",
            file=out,
        )
    out.flush()
    return EXIT_OK


def _closing_line(summary: RunSummary) -> str:
    unit = f" [{summary.unit}]" if summary.unit else ""
    return f"{summary.directory}{unit}: {summary.headline(zero_skipped=True)}"


def _claim_stdout() -> IO[str]:
    """A private handle on the real standard output; fd 1 then points at standard error, so that
    nothing else (pylinac, Prefect, worker processes) can write to it."""
    sys.stdout.flush()
    private = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(private, "w", encoding="utf-8", buffering=1)
