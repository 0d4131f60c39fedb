"""`python -m flows.baseline DIR set | list | history`: the baselines a directory's results are
judged against (linac_qa.history.baselines). Each is appended, never changed: a new baseline judges
results acquired from its effective time on; earlier verdicts stay as they were. No Prefect."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
from typing import TYPE_CHECKING

from flows.cli import EXIT_OK, EXIT_USAGE, _load

if TYPE_CHECKING:
    from linac_qa.history.baselines import Baseline
    from linac_qa.history.judging import History
    from linac_qa.history.record import Record
    from linac_qa.history.series import SeriesKey

HELP = """exit status:
  0  done
  2  bad usage or configuration, DIR not found, or the series is not in the record (or is ambiguous:
     the machines, analyses or variants to choose from are listed)

examples:
  python -m flows.baseline /srv/qa/truebeam1 set flatness_vertical_percent --from-last 5 \\
      --variant "energy=6X FFF; fff=true" --by "A. Physicist" --reason "after the bending-magnet service"
  python -m flows.baseline /srv/qa/truebeam1 set max_cax_bb_distance_mm --value 0.4 \\
      --by AP --reason commissioning
  linac-qa baseline /srv/qa/truebeam1 history --machine TrueBeam1"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m flows.baseline",
        description="Baselines per machine, analysis, metric and variant, in DIR/.linac-qa/baselines.sqlite. "
        "`set` appends one (a value, or the mean of the last N results in the record); `list` shows those "
        "in force; `history` every one ever set. A result is judged against the baseline in force at its "
        "acquisition time, with the section's `levels`.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("directory", metavar="DIR", help="the processed folder")
    p.add_argument("action", choices=("set", "list", "history"))
    p.add_argument("metric", nargs="?", help="set: the metric, as in the results' `metrics`")
    p.add_argument("--config", metavar="FILE", help="YAML config (general.unit is the default machine)")
    value = p.add_mutually_exclusive_group()
    value.add_argument("--value", type=float, help="set: the baseline value")
    value.add_argument("--from-last", type=int, metavar="N", help="set: the mean of the last N results")
    p.add_argument("--machine", help="the unit (default: general.unit, or the record's only machine)")
    p.add_argument("--analysis", help="the config section (default: the one the metric belongs to)")
    p.add_argument("--variant", help='e.g. "energy=10X" (default: the metric\'s only variant in the record)')
    p.add_argument(
        "--effective-from", metavar="ISO", help="set: acquisition time it judges from (default: now)"
    )
    p.add_argument("--by", default=None, help="set: who sets it (default: the user name)")
    p.add_argument("--reason", default="", help="set: why (kept with it)")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.action == "set":
        if not args.metric or (args.value is None and args.from_last is None):
            p.error("set needs METRIC and --value V or --from-last N")
        if args.from_last is not None and args.from_last < 1:
            p.error("--from-last must be 1 or more")
    if (loaded := _load(args)) is None:
        return EXIT_USAGE
    settings, root = loaded
    from linac_qa.history.baselines import current
    from linac_qa.history.judging import History

    history = History.open(root)
    try:
        if args.action == "set":
            return _set(history, args, args.machine or settings.general.unit)
        found = history.baselines.history(args.machine)
        shown = [
            b
            for b in (current(found) if args.action == "list" else found)
            if args.metric in (None, b.key.metric)
        ]
        for b in shown:
            print(_line(b))
        if not shown:
            print("no baselines set", file=sys.stderr)
        return EXIT_OK
    finally:
        history.close()


def _set(history: History, args: argparse.Namespace, machine: str | None) -> int:
    from linac_qa.history.baselines import Baseline, from_last, now_text
    from linac_qa.history.store import to_text

    record = history.record
    try:
        key = _series(record, args.metric, machine, args.analysis, args.variant)
        effective = to_text(_when(args.effective_from)) if args.effective_from else now_text()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    by = args.by or getpass.getuser()
    try:
        if args.from_last is not None:
            b = from_last(
                record, key, args.from_last, set_by=by, reason=args.reason, effective_from=effective
            )
        else:
            b = Baseline(key, args.value, effective, by, args.reason, now_text())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(_line(history.baselines.set(b)))
    return EXIT_OK


def _series(
    record: Record, metric: str, machine: str | None, analysis: str | None, variant: str | None
) -> SeriesKey:
    """The one series of the record the options name; ValueError listing the choices otherwise."""
    keys = {r.key for r in record.rows(machine) if r.key.metric == metric}
    keys = {k for k in keys if analysis in (None, k.analysis) and variant in (None, k.variant)}
    if not keys and machine and analysis and variant is not None:
        from linac_qa.history.series import SeriesKey

        return SeriesKey(machine, analysis, metric, variant)  # no result yet: a baseline set ahead
    if len(keys) == 1:
        return keys.pop()
    if not keys:
        raise ValueError(
            f"no results of {metric!r} in the record{' of ' + machine if machine else ''}; to set a baseline "
            "before any result, give --machine, --analysis and --variant ('' for none)"
        )
    choices = "; ".join(
        sorted(f"--machine {k.machine} --analysis {k.analysis} --variant {k.variant!r}" for k in keys)
    )
    raise ValueError(f"{metric!r} has several series; choose one: {choices}")


def _when(text: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(text)
    return when if when.tzinfo else when.astimezone()  # a local time, as a physicist writes it


def _line(b: Baseline) -> str:
    k = b.key
    variant = f" [{k.variant}]" if k.variant else ""
    why = f": {b.reason}" if b.reason else ""
    when = b.effective_from[:19]
    return f"{k.machine} {k.analysis} {k.metric}{variant} = {b.value:g} from {when} by {b.set_by}{why}"


if __name__ == "__main__":
    raise SystemExit(main())
