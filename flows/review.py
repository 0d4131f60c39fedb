"""`python -m flows.review DIR list | approve | reject | comment`: the review queue of a directory
(linac_qa.review): what needs a person's review, and the reviews given, appended to the trail and
never changed. No Prefect: plain commands (the `review-qa` flow is flows/review_flow.py)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import TYPE_CHECKING

from flows.cli import EXIT_OK, EXIT_USAGE, _load

if TYPE_CHECKING:
    from linac_qa.review.trail import Trail

HELP = """exit status:
  0  done (list: also when nothing is listed)
  2  bad usage or configuration, DIR not found, an ID that names no result (or more than one), a
     decision without --by, a reject or comment without --comment: nothing is recorded

IDs: the short id `list` shows first (or 4 characters of it at least), or the whole result id.
DATE: 2024-03-31 (that whole day, local time) or 2024-03-31T18:00.

examples:
  python -m flows.review /srv/qa/truebeam1 list --pending --since 2024-03-01
  python -m flows.review /srv/qa/truebeam1 approve --pending --until 2024-03-31 --by "A. Physicist"
  python -m flows.review /srv/qa/truebeam1 reject 3f9a1c2 --by AP --comment "phantom misaligned: repeat"
  linac-qa review /srv/qa/truebeam1 comment 3f9a1c2 --by AP --comment "MLC bank B: watch it\""""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m flows.review",
        description="The review queue of DIR (DIR/.linac-qa/reviews.sqlite). Every result at tolerance or "
        "action level, every error, every drift warning and every result nothing judged needs a person's "
        "review; clean results are approved by `auto` when recorded, unless someone comments on them. "
        "`list` shows the results with their state (pending, approved, rejected); `approve`, `reject` and "
        "`comment` append a review, which is never changed or removed. A failure that a later passing "
        'acquisition of the same test repeats shows "repeated: passed on DATE" and still needs signing.',
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("directory", metavar="DIR", help="the processed folder")
    p.add_argument("action", choices=("list", "approve", "reject", "comment"))
    p.add_argument("ids", nargs="*", metavar="ID", help="the results to review")
    p.add_argument("--config", metavar="FILE", help="YAML config (general.directory when DIR is '')")
    p.add_argument("--pending", action="store_true", help="list: only those pending; approve: every one")
    p.add_argument("--since", metavar="DATE", help="list: acquired on or after DATE")
    p.add_argument("--until", metavar="DATE", help="acquired up to DATE (approve --pending: required)")
    p.add_argument("--machine", help="only this machine's results")
    p.add_argument("--by", metavar="NAME", help="who reviews (required for every decision)")
    p.add_argument("--comment", default="", help="why (required for reject and comment)")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.action != "list":
        _check_decision(p, args)
    from linac_qa.review import queue
    from linac_qa.review.trail import Decision, Trail

    try:
        since = queue.time_bound(args.since, end=False) if args.since else None
        until = queue.time_bound(args.until, end=True) if args.until else None
    except ValueError as exc:
        p.error(str(exc))
    if (loaded := _load(args)) is None:
        return EXIT_USAGE

    trail = Trail(loaded[1])
    try:
        if args.action == "list":
            return _list(trail, args, since, until)
        try:
            ids = queue.chosen(trail, args.ids, until, args.machine)  # no IDs: --pending (checked)
            given = queue.decide(
                trail, ids, Decision(args.action), args.by, args.comment, dt.datetime.now(dt.UTC)
            )
        except queue.ReviewError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        for r in given:
            print(f"{queue.short_id(r.result_id)}  {r.decision.value} by {r.reviewer}  {r.result_id}")
        print(f"{len(given)} result(s): {args.action} by {args.by}")
        return EXIT_OK
    finally:
        trail.close()


def _check_decision(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.by:
        p.error(f"{args.action} needs --by NAME: who reviews")
    if args.pending and (args.action != "approve" or args.ids or not args.until):
        p.error("--pending decides in bulk: approve --pending --until DATE, without IDs")
    if not args.pending and not args.ids:
        p.error(f"{args.action} needs the IDs of the results (see list), or approve --pending --until DATE")
    if args.action != "approve" and not args.comment.strip():
        p.error(f"{args.action} needs --comment TEXT: why")
    if args.since:
        p.error("--since is for list")


def _list(trail: Trail, args: argparse.Namespace, since: str | None, until: str | None) -> int:
    from linac_qa.review import queue
    from linac_qa.review.text import line

    found = queue.items(trail, args.machine, since, until)
    shown = [i for i in found if i.state is queue.State.PENDING] if args.pending else found
    for item in shown:
        print(line(item))
    pending = sum(i.state is queue.State.PENDING for i in found)
    print(f"{len(shown)} result(s) listed; {pending} pending review", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
