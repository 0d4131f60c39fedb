"""`python -m flows.record DIR rebuild | export`: the QA record of a directory (linac_qa.history),
rebuilt from the outputs' `.json`, or exported as CSV or QuAAC. No Prefect: plain commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flows.cli import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, _busy, _load

HELP = """exit status:
  0  done
  1  rebuilt, but some of our `.json` documents could not be read (each named on standard error)
  2  bad usage or configuration, DIR not found, or nothing to export to FILE
  3  another run holds DIR's lock (rebuild waits for no run: run it again after)

examples:
  python -m flows.record /srv/qa/truebeam1 rebuild --config truebeam1.yml
  python -m flows.record /srv/qa/truebeam1 export --csv truebeam1.csv
  linac-qa record /srv/qa/truebeam1 export --quaac truebeam1.quaac.json --machine TrueBeam1"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m flows.record",
        description="The QA record of DIR: every analysed result's metrics with their acquisition time, "
        "baseline and level (DIR/.linac-qa/record.sqlite). `rebuild` makes it again from the outputs' "
        ".json (an archive analysed before the record existed, or a deleted record); baselines are kept, "
        "and the results are put in the review trail (its reviews are never touched). "
        "`export` writes it as a CSV table or a QuAAC document (pylinac's QA exchange format: a data "
        "point per value at its acquisition time, the machine as equipment, each result's PDF attached).",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("directory", metavar="DIR", help="the processed folder")
    p.add_argument("action", choices=("rebuild", "export"))
    p.add_argument("--config", metavar="FILE", help="YAML config (its output-directory is searched too)")
    p.add_argument("--csv", metavar="FILE", type=Path, help="export: write a CSV table")
    p.add_argument("--quaac", metavar="FILE", type=Path, help="export: write a QuAAC JSON document")
    p.add_argument("--machine", help="export: only this machine (the results' unit)")
    p.add_argument("--performer", default="linac-qa-flows", help="QuAAC: who performed the measurements")
    p.add_argument("--email", default="linac-qa-flows@example.org", help="QuAAC: the performer's e-mail")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.action == "export" and not (args.csv or args.quaac):
        p.error("export needs --csv FILE or --quaac FILE")
    if (loaded := _load(args)) is None:
        return EXIT_USAGE
    settings, root = loaded
    if args.action == "rebuild":
        return _rebuild(root, settings.general.output_directory)
    return _export(root, args)


def _rebuild(root: Path, output_directory: Path | None) -> int:
    from linac_qa.history.backfill import rebuild
    from linac_qa.run import directory_lock

    if (busy := _busy(root)) is not None:
        return busy
    with directory_lock(root):
        done = rebuild(root, output_directory)
    for name in done.unreadable:
        print(f"unreadable: {name}", file=sys.stderr)
    print(
        f"{root}: {done.rows} value(s) from {done.documents} result(s); {len(done.unreadable)} unreadable;"
        f" {done.entries} result(s) in the review trail"
    )
    return EXIT_PROBLEMS if done.unreadable else EXIT_OK


def _export(root: Path, args: argparse.Namespace) -> int:
    from linac_qa.history import export

    found = export.rows(root, args.machine)
    if not found:
        print(f"error: the record of {root} has no values{' of ' + args.machine if args.machine else ''}"
              " (python -m flows.record DIR rebuild makes it from the outputs)", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    if args.csv:
        print(f"{args.csv}: {export.to_csv(found, args.csv)} value(s)")
    if args.quaac:
        n = export.to_quaac(found, root, args.quaac, args.performer, args.email)
        print(f"{args.quaac}: {n} data point(s)")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
