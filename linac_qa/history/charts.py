"""Small trend PNGs for the e-mail: one per metric that failed at the action level or is drifting,
the recent history up to the result the message is about, drawn like the dashboard's charts
(baseline, tolerance and action bands, control limits, re-baselines, points coloured by level)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from linac_qa.history.latest import ACTION, DRIFT, Latest, title
from linac_qa.history.series import Level, Point, Window

RECENT = 90  # results drawn: a quarter of nightly QA, what a glance in an e-mail can read
SIZE = (6.0, 2.3)  # inches at DPI: 576 x 220 px, narrower than any mail client's reading pane
DPI = 96
COLOURS = {Level.OK: "#1b7f3b", Level.TOLERANCE: "#d08c00", Level.ACTION: "#b00020", None: "#888888"}
DRIFT_COLOUR = "#6a3d9a"


def charted(latest: Sequence[Latest]) -> list[Latest]:
    """The metrics that get a chart in the e-mail: failing at the action level, or drifting."""
    return [x for x in latest if x.standing in (ACTION, DRIFT)]


def trend_png(item: Latest, recent: int = RECENT) -> bytes:
    """The last `recent` results up to `item.point`. A Figure of its own, not pyplot: no global
    state, so Prefect's task threads may draw at once."""
    pts = list(item.series.points)
    upto = pts.index(item.point) + 1 if item.point in pts else len(pts)
    pts = pts[max(0, upto - recent) : upto]
    # matplotlib takes a second of CPU to import: only a night with something to chart imports it.
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    when = [float(date2num(p.acquired)) for p in pts]  # the axis's own numbers: typed, and fast
    for window, colour, alpha in (("action", "#d08c00", 0.12), ("tolerance", "#1b7f3b", 0.15)):
        low, high = _edges(pts, window)
        if any(v is not None for v in low + high):
            ax.fill_between(when, _nan(low), _nan(high), step="post", color=colour, alpha=alpha, lw=0)
    low, high = _edges(pts, "control")
    for edge in (low, high):
        ax.step(when, _nan(edge), where="post", color="#555555", lw=0.8, ls=":")
    ax.step(when, _nan([p.baseline for p in pts]), where="post", color="#1f4e99", lw=1.5)
    for change in item.series.baselines:
        at = float(date2num(change.effective_from))
        if when and when[0] < at <= when[-1]:  # the first baseline is no change
            ax.axvline(at, color="#1f4e99", lw=0.8, ls="--")
    ax.plot(when, [p.value for p in pts], color="#bbbbbb", lw=0.8, zorder=2)
    ax.scatter(
        when,
        [p.value for p in pts],
        s=[40 if p.drift else 12 for p in pts],
        c=[DRIFT_COLOUR if p.drift and p.level is not Level.ACTION else COLOURS[p.level] for p in pts],
        marker="o",
        zorder=3,
    )
    ax.set_title(f"{title(item.series.key)}: {item.word}", fontsize=9, loc="left")
    ax.set_ylabel(item.series.unit, fontsize=8)
    ax.xaxis_date()
    locator = AutoDateLocator(maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.tick_params(labelsize=7)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _edges(points: Sequence[Point], window: str) -> tuple[list[float | None], list[float | None]]:
    windows: list[Window | None] = [getattr(p, window) for p in points]
    return [w.low if w else None for w in windows], [w.high if w else None for w in windows]


def _nan(values: Sequence[float | None]) -> list[float]:
    """matplotlib leaves a gap at NaN: no limit on that side at that time."""
    return [float("nan") if v is None else v for v in values]
