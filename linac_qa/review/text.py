"""The review queue in words: a line per result for the command line, and the markdown of the
nightly run's "pending review" artifact (the flow creates it; this stays free of Prefect)."""

from __future__ import annotations

from collections.abc import Sequence

from linac_qa.history.store import from_text
from linac_qa.records.reporting import markdown_cell
from linac_qa.review.queue import Item, State


def when(text: str | None) -> str:
    """A trail time in local time, to the minute; "-" for none."""
    return f"{from_text(text).astimezone():%Y-%m-%d %H:%M}" if text else "-"


def verdict(item: Item) -> str:
    e = item.entry
    return f"{e.status}, {e.level} level" if e.level else e.status


def review_said(item: Item) -> str:
    """The last review given, "auto" with its rule, or what makes it wait."""
    if item.auto:
        return f"auto: {item.reviews[-1].rule}"
    people = [r for r in item.reviews if r.reviewer != "auto"]
    if not people:
        return f"needs review: {item.needs}"
    last = people[-1]
    said = f"{last.decision.value} by {last.reviewer} {when(last.at)}"
    return f"{said}: {last.comment}" if last.comment else said


def repeated(item: Item) -> str:
    return f"repeated: passed on {when(item.repeated.acquired)[:10]}" if item.repeated else ""


def line(item: Item) -> str:
    """`list`'s line: the short id a person types first."""
    e = item.entry
    variant = f" [{e.variant}]" if e.variant else ""
    parts = [
        f"{item.short}  {item.state.value:<8}  {when(e.acquired or e.recorded)}  {e.machine or '-'} "
        f"{e.analysis}{variant}: {verdict(item)}",
        review_said(item),
        repeated(item),
    ]
    return "; ".join(p for p in parts if p)


COLUMNS = ("id", "acquired", "test", "verdict", "needs review", "reason", "report")


def pending_markdown(items: Sequence[Item], machine: str, deployment_link: str = "") -> str:
    """The results of `machine` pending review, oldest first, and where to review them."""
    waiting = [i for i in items if i.state is State.PENDING]
    lines = [f"# {machine}: {len(waiting)} result{'s' if len(waiting) != 1 else ''} pending review", ""]
    if waiting:
        lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for i in waiting:
            e = i.entry
            cells = (
                i.short,
                when(e.acquired or e.recorded),
                f"{e.analysis} [{e.variant}]" if e.variant else e.analysis,
                verdict(i),
                "; ".join(x for x in (i.needs or review_said(i), repeated(i)) if x),
                e.reason,
                e.report or "",
            )
            lines.append("| " + " | ".join(markdown_cell(c) for c in cells) + " |")
    lines.append("")
    if deployment_link:
        lines.append(
            f"Review them in the UI: [{machine} review]({deployment_link}) (Run, then fill the form)."
        )
    lines.append(
        "On the command line: `python -m flows.review DIR list --pending`, then "
        "`python -m flows.review DIR approve ID... --by NAME`."
    )
    return "\n".join(lines)
