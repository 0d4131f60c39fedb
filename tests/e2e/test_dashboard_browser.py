"""The machine's dashboard (issue 16, acceptance 3) in a real headless Chromium, driven by the
DevTools protocol, with the network cut off: every chart drawn, nothing requested beyond the file
itself, no console error, and a click on a point opens that result's PDF."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import urljoin

import pytest

from linac_qa.history.dashboard import write_dashboard
from linac_qa.testing import chromium
from linac_qa.testing.histories import seeded_histories

pytestmark = pytest.mark.skipif(not chromium.available(), reason="no Chromium at /usr/bin/chromium")

# Viewport coordinates of a chart's last result, from plotly's own axes.
LAST_POINT = """(() => {
  const gd = document.querySelector('.chart[data-index="0"]');
  gd.scrollIntoView();
  const fl = gd._fullLayout, box = gd.getBoundingClientRect();
  const last = Math.max(...gd._fullData.flatMap(t => t.meta === 'points' ? t.customdata : []));
  const trace = gd._fullData.find(t => t.meta === 'points' && t.customdata.includes(last));
  const i = trace.customdata.indexOf(last);
  return [box.left + fl._size.l + fl.xaxis.d2p(trace.x[i]), box.top + fl._size.t + fl.yaxis.d2p(trace.y[i])];
})()"""


def test_the_dashboard_draws_offline_and_a_click_opens_the_report(tmp_path: Path) -> None:
    series = seeded_histories(metrics=6, points=60)
    page_path = write_dashboard(series, "TrueBeam1", tmp_path, dt.datetime(2024, 3, 5, 6, 0, tzinfo=dt.UTC))
    url = page_path.as_uri()
    with chromium.browser() as page:
        chromium.open_page(page, url)
        page.wait_for("document.body.dataset.ready === '1'")
        page.wait_for("document.querySelector('.chart[data-index=\"0\"]').dataset.drawn === '1'")
        # The latest verdicts first: the action-level failure, then the drift.
        levels = page.evaluate("Array.from(document.querySelectorAll('td.level'), td => td.textContent)")
        assert levels[:3] == ["ACTION", "drift", "tolerance"] and len(levels) == 6

        page.evaluate("drawAll()")
        drawn = page.evaluate(
            "Array.from(document.querySelectorAll('.chart'), d => d.dataset.drawn === '1'"
            " && d.querySelectorAll('.scatterlayer .trace').length)"
        )
        assert len(drawn) == 6 and all(n >= 6 for n in drawn), drawn  # bands, limits, baseline, points

        x, y = page.evaluate(LAST_POINT)
        page.pump(0.3)  # the scroll settles before the click
        page.click(x, y)
        page.pump(1.0)
        failed = series[1]  # the seeded failure: first in the table, first chart
        report = failed.points[-1].report
        assert report is not None
        assert page.windows_opened == [urljoin(url, report)]

        page.pump(0.2)
        assert page.console_errors == []
        schemes = {u.split(":", 1)[0] for u in page.requests}
        assert schemes <= {"file", "data", "blob"}, page.requests
