"""The dashboard for five years of nightly QA (issue 16, acceptance 5): 20 metrics x 1,800 points,
written as a run writes it, then opened in headless Chromium with the network cut off.

    python benchmarks/dashboard_refresh.py [--metrics 20] [--points 1800] [--repeat 3]
                                           [--workdir DIR] [--screenshot PNG]

Reports: the HTML's size; the time to write it (a run's refresh: the first in a process also
compresses plotly.js once, reported apart); and in the browser the time to its load event, until
the charts are ready to draw (plotly inflated and evaluated) and the first screen's charts are
drawn, and the time to draw every chart at once (what printing does). A cold browser is timed
first (no code cache), then a reload. `--screenshot`: the first screen of an 8-metric dashboard
of 60 nights (every element of a chart readable), as PNG.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

from harness import aligned, load_average, say

from linac_qa.history import dashboard
from linac_qa.history.dashboard import write_dashboard
from linac_qa.testing import chromium
from linac_qa.testing.histories import seeded_histories

FIRST_SCREEN = (
    "Array.from(document.querySelectorAll('.chart')).filter(d => d.getBoundingClientRect().top < innerHeight)"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--points", type=int, default=1800)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--screenshot", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lqa-dashboard-"))
    work.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    say(f"seeding {args.metrics} metrics x {args.points} points")
    series = seeded_histories(metrics=args.metrics, points=args.points)
    start = time.perf_counter()
    dashboard._plotly_gz()
    plotly_once = time.perf_counter() - start
    writes = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        path = write_dashboard(series, "TrueBeam1", work, now)
        writes.append(time.perf_counter() - start)
    figures: dict[str, object] = {
        "metrics": args.metrics,
        "points": args.points,
        "html_bytes": path.stat().st_size,
        "compress_plotly_once_s": round(plotly_once, 3),
        "write_s": [round(w, 3) for w in writes],
    }
    say("opening it in headless Chromium")
    with chromium.browser() as page:
        for visit in ("cold", "reload"):
            loaded = chromium.open_page(page, path.as_uri())
            ready = page.wait_for("document.body.dataset.ready === '1'", timeout=60)
            first = page.wait_for(f"{FIRST_SCREEN}.every(d => d.dataset.drawn === '1')", timeout=60)
            every = page.evaluate(
                "(() => { const t = performance.now(); drawAll(); return performance.now() - t; })()"
            )
            figures[f"browser_{visit}"] = {
                "load_event_s": round(loaded, 3),
                "charts_ready_s": round(loaded + ready, 3),
                "first_screen_drawn_s": round(loaded + ready + first, 3),
                "draw_every_chart_s": round(every / 1000, 3),
            }
        page.pump(0.3)
        figures["console_errors"] = page.console_errors
        figures["requests_not_file"] = [
            u for u in page.requests if not u.startswith(("file:", "data:", "blob:"))
        ]
    figures["load_average"] = load_average()
    if args.screenshot:
        _screenshot(work / "shot", args.screenshot, now)
        figures["screenshot"] = str(args.screenshot)
    (work / "dashboard_refresh.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    print("\n".join(aligned([(k, json.dumps(v)) for k, v in figures.items()])))
    return 0


def _screenshot(work: Path, target: Path, now: dt.datetime) -> None:
    work.mkdir(parents=True, exist_ok=True)
    path = write_dashboard(seeded_histories(metrics=8, points=60), "TrueBeam1", work, now)
    with chromium.browser(width=1280, height=1500) as page:
        chromium.open_page(page, path.as_uri())
        page.wait_for("document.body.dataset.ready === '1'")
        page.wait_for(f"{FIRST_SCREEN}.every(d => d.dataset.drawn === '1')")
        page.pump(0.5)
        page.screenshot(target, full_page=False)


if __name__ == "__main__":
    raise SystemExit(main())
