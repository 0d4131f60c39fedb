"""The drift rules' false-warning and detection rates (issue 16, acceptance 1), simulated through
`linac_qa.history.drift` exactly as the record judges a series: a baseline window of the first
`--window` values (the baseline its mean, as `auto-baseline` sets it), then each later value judged
by the chart of every value so far.

- false warnings: the share of 1,000 stationary values that a rule flags, over `--histories`
  histories (each its own window, so the chart's own uncertainty is part of the figure);
- detection: the share of histories in which a sustained +1.5 sigma shift is flagged within 10
  points, starting right after the window and 100 points later.

    python benchmarks/drift_rules.py [--histories 100] [--window 20]
"""

from __future__ import annotations

import argparse
import random
import statistics

from linac_qa.history import drift
from linac_qa.testing.synthetic_history import drift_flags


def false_rate(histories: int, window: int, points: int) -> tuple[float, float]:
    """Mean and worst share of flagged stationary values."""
    rates = []
    for seed in range(histories):
        rng = random.Random(seed)
        flagged = drift_flags([rng.gauss(0, 1) for _ in range(window + points)], window)
        rates.append(sum(f is not None for f in flagged) / len(flagged))
    return statistics.fmean(rates), max(rates)


def detected(histories: int, window: int, before: int, shift: float = 1.5, within: int = 10) -> float:
    found = 0
    for seed in range(histories):
        rng = random.Random(10_000 + seed)
        values = [rng.gauss(0, 1) for _ in range(window + before)]
        values += [rng.gauss(shift, 1) for _ in range(within)]
        found += any(drift_flags(values, window)[before:])
    return found / histories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--histories", type=int, default=100)
    parser.add_argument("--window", type=int, default=drift.DEFAULT_WINDOW)
    args = parser.parse_args()
    mean, worst = false_rate(args.histories, args.window, 1000)
    print(f"stationary, 1,000 points x {args.histories} histories, {args.window}-point window:")
    print(f"  false warnings: {mean:.2%} of points (worst history {worst:.2%})")
    for before in (0, 100):
        share = detected(max(args.histories, 300), args.window, before)
        print(f"  +1.5 sigma shift {before} points after the window: flagged within 10 in {share:.0%}")


if __name__ == "__main__":
    main()
