"""The QA record at five years of nightly results (issue 16, acceptance 5, the record's part):
20 metrics x 1,800 points, written as the runs write them, then timed:

- a night's added cost: recording and judging one night's results on top of the five years
  (levels, baselines in force, drift), as the run does before the ledger keeps each verdict;
- series_for: every series as the views read it;
- rebuild: the record made again from the 1,800 outputs' `.json`.

    python benchmarks/record_refresh.py [--days 1800] [--night 10]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from linac_qa.config import load_settings
from linac_qa.history.backfill import rebuild
from linac_qa.history.judging import History, record_result
from linac_qa.history.views_data import series_for
from linac_qa.testing.synthetic_history import result_on, write_outputs

# 20 metrics over four analyses, five each (levels from each section's defaults where it has them).
SECTIONS = {
    "field-analysis": ["symmetry_horizontal_percent", "symmetry_vertical_percent",
                       "flatness_horizontal_percent",
                       "flatness_vertical_percent", "field_size_vertical_mm"],
    "winston-lutz": ["max_cax_bb_distance_mm", "median_cax_bb_distance_mm", "gantry_iso_size_mm",
                     "collimator_iso_size_mm", "couch_iso_size_mm"],
    "planar-imaging": ["mtf50_lp_mm", "median_contrast", "median_cnr", "low_contrast_rois_seen", "x_mm"],
    "cbct": ["mtf50_lp_mm", "uniformity_index", "slice_thickness_mm", "avg_node_distance_mm", "roll_deg"],
}  # fmt: skip
SOURCES = {"image.dcm": "ab" * 32}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=1800)
    p.add_argument("--night", type=int, default=10, help="results in the timed night (of the four analyses)")
    args = p.parse_args()
    settings = load_settings(text="".join(f"{s}:\n  auto-baseline: 20\n" for s in SECTIONS))
    rng = random.Random(5)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        history = History.open(directory)
        per_result = []
        started = time.perf_counter()
        for day in range(args.days + 1):
            for analysis, metrics in SECTIONS.items():
                values = {m: round(1.0 + 0.02 * rng.gauss(0, 1), 4) for m in metrics}
                r = result_on(day, values, analysis=analysis)
                write_outputs(directory, r, SOURCES)
                t = time.perf_counter()
                record_result(history, r, SOURCES, settings.section(analysis))
                per_result.append(time.perf_counter() - t)
        history.close()
        written = time.perf_counter() - started
        tail = per_result[-4 * 30 :]  # the last month: the record at its largest
        night = args.night * statistics.fmean(tail)
        t = time.perf_counter()
        found = series_for(directory, "TrueBeam1")
        read = time.perf_counter() - t
        points = sum(len(s.points) for s in found)
        t = time.perf_counter()
        done = rebuild(directory)
        rebuilt = time.perf_counter() - t
        size = sum(f.stat().st_size for f in (directory / ".linac-qa").glob("*.sqlite*"))
        print(f"series: {len(found)}, points: {points} (written with their outputs in {written:.1f} s)")
        print(f"record + baselines on disk: {size / 1e6:.1f} MB")
        print(f"one result recorded and judged (last month, mean): {1000 * statistics.fmean(tail):.2f} ms")
        print(f"a night of {args.night} results: {night:.3f} s added")
        print(f"series_for (every series, as the views read them): {read:.2f} s")
        print(f"rebuild from {done.documents} .json: {rebuilt:.2f} s ({done.rows} rows)")


if __name__ == "__main__":
    main()
