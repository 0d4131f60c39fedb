"""Drift: an individuals and moving-range (I-MR) chart per metric, its centre line the baseline and
its sigma from the moving ranges of a baseline window, and Nelson-style run rules that flag a
sustained shift while every value is still within tolerance.

What these rules give (300 simulated histories each): a +1.5 sigma shift is
flagged within 10 points in 84-86 % of histories; stationary noise flags 0.9 % of its points when the
chart is known exactly, but 2.3 % with a 20-point baseline window (1.5 % with 50), because sigma is
estimated from so few moving ranges. Issue 16 asks for under 1 %: still open."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from linac_qa.history.series import Window

# d2 for moving ranges of two: sigma = mean moving range / 1.128 (Montgomery, SPC, table VI).
D2 = 1.128
RUN = 8  # points in a row on one side of the centre line (Nelson's rule 2 uses 9; Western Electric 8)
MIN_WINDOW = 5  # fewer points give no usable sigma: no control limits, no drift
# The points judged only once the window is known, and before it has this many, no sigma yet.
DEFAULT_WINDOW = 20


@dataclass(frozen=True)
class Chart:
    centre: float
    sigma: float

    @property
    def limits(self) -> Window:
        return Window(self.centre - 3 * self.sigma, self.centre + 3 * self.sigma)


def chart(centre: float, window: Sequence[float]) -> Chart | None:
    """The chart of a baseline window (in acquisition order): sigma from its moving ranges."""
    if len(window) < MIN_WINDOW:
        return None
    ranges = [abs(b - a) for a, b in itertools.pairwise(window)]
    sigma = statistics.fmean(ranges) / D2
    return Chart(centre, sigma) if sigma > 0 else None


def broken_rule(recent: Sequence[float], c: Chart) -> str | None:
    """The rule the last of `recent` (values since the window, in order, oldest first) completes."""
    if not recent:
        return None
    z = [(v - c.centre) / c.sigma for v in recent]
    tail = z[-RUN:]
    if len(tail) == RUN and (all(x > 0 for x in tail) or all(x < 0 for x in tail)):
        return f"{RUN} in a row {'above' if tail[-1] > 0 else 'below'} the centre line"
    last3 = z[-3:]
    for sign, side in ((1, "above"), (-1, "below")):
        if sign * last3[-1] > 2 and sum(sign * x > 2 for x in last3) >= 2:
            return f"2 of 3 beyond 2 sigma {side} the centre line"
    return None
