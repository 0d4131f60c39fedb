"""Drift: an individuals and moving-range (I-MR) chart per metric, and rules that flag a sustained
shift while every value is still within tolerance: a two-sided CUSUM tuned to a 1.5 sigma shift,
and Nelson's "2 of 3 beyond 2 sigma".

The chart is learned from the baseline's window and goes on learning from the results after it,
because a 20-point window alone gives so uncertain a chart that no rule keeps false warnings rare:
- sigma is the mean moving range of every value so far; a sustained shift moves one moving range,
  not their mean, so learning sigma from it does not hide it;
- the centre line is the mean of every value but the latest `LAG`, so the values a rule judges are
  never part of the centre they are judged against. The baseline stays the reference the levels
  judge by; the centre line is the process's own mean.

What this gives (`benchmarks/drift_rules.py`, 20-point window): stationary noise flags about 0.6 %
of its points; a +1.5 sigma shift is flagged within 10 points in about 87 % of histories when it
starts right after the window, about 92 % when it starts 100 points later. The 8-in-a-row rule this
replaces, on a chart of the window alone, flagged 2.3 % of stationary points."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from linac_qa.history.series import Window

# d2 for moving ranges of two: sigma = mean moving range / 1.128 (Montgomery, SPC, table VI).
D2 = 1.128
MIN_WINDOW = 5  # fewer points give no usable sigma: no control limits, no drift
# The points judged only once the window is known, and before it has this many, no sigma yet.
DEFAULT_WINDOW = 20
LAG = 10  # the latest values, which the rules judge, are kept out of the centre line
# CUSUM (Montgomery, SPC, 9.1): reference value K, half the 1.5 sigma shift to be found, and
# decision interval H, both in sigma; its sums over the latest SPAN values (an in-control CUSUM
# returns to zero within a few points, so a longer look back changes nothing).
K = 0.75
H = 4.0
SPAN = 20


@dataclass(frozen=True)
class Chart:
    centre: float
    sigma: float

    @property
    def limits(self) -> Window:
        return Window(self.centre - 3 * self.sigma, self.centre + 3 * self.sigma)


def chart(history: Sequence[float], window: int) -> Chart | None:
    """The chart that judges the last of `history`: every value since the baseline's window began,
    in acquisition order, the first `window` of them the window itself."""
    if min(window, len(history)) < MIN_WINDOW:
        return None
    settled = history[: max(window, len(history) - LAG)]
    sigma = statistics.fmean(abs(b - a) for a, b in itertools.pairwise(history)) / D2
    return Chart(statistics.fmean(settled), sigma) if sigma > 0 else None


def broken_rule(recent: Sequence[float], c: Chart) -> str | None:
    """The rule the last of `recent` (values since the window, in order, oldest first) breaks."""
    if not recent:
        return None
    z = [(v - c.centre) / c.sigma for v in recent[-SPAN:]]
    high = low = 0.0
    for x in z:
        high, low = max(0.0, high + x - K), max(0.0, low - x - K)
    if high > H or low > H:
        side = "above" if high > H else "below"
        return f"sustained shift {side} the centre line (CUSUM beyond {H:g} sigma)"
    last3 = z[-3:]
    for sign, side in ((1, "above"), (-1, "below")):
        if sign * last3[-1] > 2 and sum(sign * x > 2 for x in last3) >= 2:
            return f"2 of 3 beyond 2 sigma {side} the centre line"
    return None
