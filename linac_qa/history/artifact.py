"""This run's metrics against the record, as the markdown of a Prefect artifact: each metric's
value, its baseline, the change, the windows in force and the level it reached, failures and drift
first (the flow creates the artifact; this stays free of Prefect)."""

from __future__ import annotations

from collections.abc import Sequence

from linac_qa.history.latest import Latest, number, title
from linac_qa.history.series import Window
from linac_qa.records.reporting import markdown_cell

COLUMNS = (
    "level",
    "metric",
    "value",
    "baseline",
    "change",
    "tolerance",
    "action",
    "drift",
    "acquired",
    "report",
)


def run_markdown(latest: Sequence[Latest], machine: str, dashboard: str = "") -> str:
    """`latest`: this run's value of each metric it measured (`latest_first(series, result_ids)`);
    `dashboard`: where the machine's dashboard is, named under the table."""
    lines = [f"# {machine}: this run against the record", ""]
    if not latest:
        lines.append("No metric of this run is in the record.")
    else:
        lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for x in latest:
            p, unit = x.point, x.series.unit
            cells = (
                f"**{x.word}**",
                title(x.series.key),
                number(p.value, unit),
                number(p.baseline, unit),
                x.change,
                _window(p.tolerance, unit),
                _window(p.action, unit),
                p.drift or "",
                f"{p.acquired.astimezone():%Y-%m-%d %H:%M}",
                p.report or "",
            )
            lines.append("| " + " | ".join(markdown_cell(c) for c in cells) + " |")
    if dashboard:
        lines += ["", f"Every metric's history: {dashboard}"]
    return "\n".join(lines)


def _window(window: Window | None, unit: str) -> str:
    """ "0.1 to 0.5 mm", "<= 0.5 mm", "-" when nothing is in force."""
    if window is None or (window.low is None and window.high is None):
        return "-"
    if window.low is None:
        return f"<= {number(window.high, unit)}"
    if window.high is None:
        return f">= {number(window.low, unit)}"
    return f"{number(window.low)} to {number(window.high, unit)}"
