"""A machine's QA dashboard: one self-contained HTML file, offline and interactive, regenerated
after each run, beside the data in `DIR/qa-dashboard-<machine>.html`.

The latest verdicts come first as a plain HTML table (readable even where scripts are blocked),
failures and drift at its top; then a chart per metric: its points coloured by level, the baseline
as a step line (it changes at re-baselines, marked), the tolerance and action bands and the control
limits in force at each point's acquisition time. Clicking a point opens its PDF.

plotly.js (4.8 MB) and the series travel gzipped and base64-encoded in the file and are inflated by
the browser's own DecompressionStream: 20 metrics x 1,800 points stay near 2.5 MB with every point
kept. Charts are drawn as they scroll into view (SVG, not WebGL: browsers allow about 16 WebGL
contexts per page, and a clinic PC or virtual desktop may have no GPU at all), so the first screen
is drawn in well under a second whatever the history's length.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import gzip
import html
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from linac_qa.history.latest import Latest, change_text, latest_first, number, title
from linac_qa.history.series import Level, MetricSeries, Point, Window
from linac_qa.records.outputs import staged_outputs

PREFIX = "qa-dashboard-"
SUFFIX = ".html"
LEVEL_CODES = {Level.OK: "o", Level.TOLERANCE: "t", Level.ACTION: "a", None: "-"}
SIGNIFICANT = 6  # digits kept of each value: beyond anything an analysis resolves


def dashboard_path(directory: Path, machine: str) -> Path:
    """Beside the data, where the physicist opens the QA folder (not in the hidden state folder):
    the reports it links to are relative to it, so the links survive the share being mounted
    elsewhere. The machine's name is kept to what any file system takes."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", machine).strip("._") or "machine"
    return directory / f"{PREFIX}{safe}{SUFFIX}"


def is_dashboard(name: str) -> bool:
    """A file a run wrote (discovery skips it as its own output)."""
    lower = name.lower()
    return lower.startswith(PREFIX) and lower.endswith(SUFFIX)


def write_dashboard(
    series: Sequence[MetricSeries], machine: str, directory: Path, generated: dt.datetime
) -> Path:
    """Written atomically: a browser that has it open never reloads half a file."""
    path = dashboard_path(directory, machine)
    page = render_dashboard(series, machine, generated)
    with staged_outputs([path]) as temporary:
        temporary[path].write_text(page, encoding="utf-8")
    return path


def render_dashboard(series: Sequence[MetricSeries], machine: str, generated: dt.datetime) -> str:
    latest = latest_first(series)
    charted = [x.series for x in latest]  # the charts in the table's order
    payload = json.dumps([_chart_data(s) for s in charted], separators=(",", ":"), allow_nan=False)
    heading = f"{machine}: QA record"
    when = generated.astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return _PAGE.format(
        title=html.escape(heading),
        heading=html.escape(heading),
        generated=html.escape(when),
        summary=html.escape(_summary_line(latest)),
        table=_table(latest) if latest else "<p>No results recorded yet.</p>",
        charts="".join(
            f'<section id="chart-{i}"><h2>{html.escape(title(s.key))}</h2>'
            f'<div class="chart" data-index="{i}"></div></section>'
            for i, s in enumerate(charted)
        ),
        plotly=_plotly_gz(),
        data=_gz(payload.encode()),
        script=_SCRIPT,
    )


def _summary_line(latest: list[Latest]) -> str:
    words = [x.word for x in latest]
    counted = ", ".join(f"{words.count(w)} {w}" for w in dict.fromkeys(words))
    return f"{len(latest)} metric{'s' if len(latest) != 1 else ''}: {counted}." if latest else ""


def _table(latest: list[Latest]) -> str:
    e = html.escape
    head = "".join(
        f"<th>{h}</th>"
        for h in ("level", "metric", "latest", "baseline", "change", "acquired", "drift", "report")
    )
    rows = []
    for i, x in enumerate(latest):
        p, unit = x.point, x.series.unit
        report = f'<a href="{e(_href(p.report))}">PDF</a>' if p.report else "-"
        rows.append(
            f'<tr class="{x.word.split()[0].lower()}"><td class="level">{e(x.word)}</td>'
            f'<td><a href="#chart-{i}">{e(title(x.series.key))}</a></td>'
            f"<td>{e(number(p.value, unit))}</td><td>{e(number(p.baseline, unit))}</td>"
            f"<td>{e(change_text(p, unit))}</td><td>{e(_local(p.acquired))}</td>"
            f"<td>{e(p.drift or '')}</td><td>{report}</td></tr>"
        )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _chart_data(s: MetricSeries) -> dict[str, Any]:
    """Compact columns: times as local wall-clock seconds (what the clinic's clock said), values to
    six significant digits, levels one letter each, the windows only where they change."""
    pts = s.points
    data: dict[str, Any] = {
        "unit": s.unit,
        "t": [_wall_clock(p.acquired) for p in pts],
        "v": [float(f"{p.value:.{SIGNIFICANT}g}") for p in pts],
        "lv": "".join(LEVEL_CODES[p.level] for p in pts),
        "r": [_href(p.report) if p.report else None for p in pts],
        "d": {str(i): p.drift for i, p in enumerate(pts) if p.drift},
        "b": _steps(pts, lambda p: p.baseline),
        "rb": [  # the first baseline is no change: only those set after the first result are marked
            [_wall_clock(c.effective_from), _round(c.value), c.set_by, c.reason]
            for c in s.baselines
            if pts and c.effective_from > pts[0].acquired
        ],
    }
    for name, side in (("tol", "tolerance"), ("act", "action"), ("ctl", "control")):
        for edge in ("low", "high"):
            data[f"{name}_{edge}"] = _steps(pts, lambda p, a=side, b=edge: _edge(getattr(p, a), b))
    return data


def _edge(window: Window | None, edge: str) -> float | None:
    return None if window is None else getattr(window, edge)


def _steps(points: Sequence[Point], value: Any) -> list[list[Any]]:
    """[[index, value], ...] where the value changes: a step line the browser draws to the end."""
    out: list[list[Any]] = []
    last: object = object()
    for i, p in enumerate(points):
        v = value(p)
        if v != last:  # compared unrounded: rounding each of 36,000 points is most of a refresh
            out.append([i, _round(v)])
            last = v
    return out if any(v is not None for _, v in out) else []


def _round(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.{SIGNIFICANT}g}")


def _wall_clock(when: dt.datetime) -> int:
    """Seconds since 1970 of the local wall clock: plotly's date axes have no time zone."""
    local = when.astimezone()
    return int(local.replace(tzinfo=dt.UTC).timestamp())


def _local(when: dt.datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


def _href(report: str | None) -> str:
    """Relative to the dashboard (which sits in the processed directory), or a file URI for a
    report under an output directory elsewhere."""
    if not report:
        return ""
    return Path(report).as_uri() if os.path.isabs(report) else quote(report.replace(os.sep, "/"))


def _gz(data: bytes) -> str:
    return base64.b64encode(gzip.compress(data, compresslevel=6, mtime=0)).decode("ascii")


@functools.cache
def _plotly_gz() -> str:
    """Compressed once per process: 0.2 s that a watch would otherwise spend on every refresh."""
    from plotly.offline import get_plotlyjs

    return _gz(get_plotlyjs().encode())


_SCRIPT = r"""
(async () => {
  const inflate = async id => {
    const bin = atob(document.getElementById(id).textContent.trim());
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Response(stream).text();
  };
  const [js, text] = await Promise.all([inflate('plotly-gz'), inflate('data-gz')]);
  (0, eval)(js);  // plotly's bundle defines window.Plotly
  const all = JSON.parse(text);
  const COLOURS = {o: '#1b7f3b', t: '#d08c00', a: '#b00020', '-': '#888'};
  const DRIFT = '#6a3d9a';
  const WORDS = {o: 'ok', t: 'tolerance', a: 'ACTION', '-': 'not judged'};
  const draw = (div, s) => {
    const x = s.t.map(t => t * 1000), last = x[x.length - 1];
    const step = (changes, extra) => {
      const xs = changes.map(c => x[c[0]]), ys = changes.map(c => c[1]);
      xs.push(last); ys.push(ys[ys.length - 1]);
      return Object.assign({x: xs, y: ys, mode: 'lines', line: {shape: 'hv'}, hoverinfo: 'skip'}, extra);
    };
    const traces = [];
    const band = (low, high, name, fill, line) => {
      if (!low.length && !high.length) return;
      const edge = {shape: 'hv', color: line, width: 1, dash: 'dash'};
      traces.push(step(low.length ? low : high, {name, legendgroup: name, showlegend: false, line: edge}));
      traces.push(step(high.length ? high : low, {name, legendgroup: name, line: edge, fillcolor: fill,
        fill: low.length && high.length ? 'tonexty' : 'none'}));
    };
    band(s.act_low, s.act_high, 'action band', 'rgba(208,140,0,0.12)', '#b00020');
    band(s.tol_low, s.tol_high, 'tolerance band', 'rgba(27,127,59,0.12)', '#d08c00');
    for (const c of [s.ctl_low, s.ctl_high]) if (c.length)
      traces.push(step(c, {name: 'control limits', legendgroup: 'ctl',
        showlegend: c === s.ctl_low || !s.ctl_low.length,
        line: {shape: 'hv', color: '#555', width: 1, dash: 'dot'}}));
    if (s.b.length)
      traces.push(step(s.b, {name: 'baseline', line: {shape: 'hv', color: '#1f4e99', width: 2}}));
    const hover = i => WORDS[s.lv[i]] + (s.d[i] ? '<br>drift: ' + s.d[i] : '') +
      (s.r[i] ? '<br>click: ' + decodeURIComponent(s.r[i].split('/').pop()) : '');
    traces.push({name: 'results', x, y: s.v, mode: 'lines', line: {color: '#bbb', width: 1},
      hoverinfo: 'skip', showlegend: false});
    // One trace per level, each of one style: per-point style arrays make plotly's SVG drawing
    // half as fast again. customdata: the point's index, for its report.
    const groups = {};
    for (let i = 0; i < s.v.length; i++)
      (groups[s.d[i] && s.lv[i] !== 'a' ? 'd' : s.lv[i]] ??= []).push(i);
    for (const code of ['a', 'd', 't', 'o', '-']) {
      const at = groups[code];
      if (!at) continue;
      const drift = code === 'd';
      traces.push({name: drift ? 'drift' : WORDS[code], meta: 'points', mode: 'markers',
        x: at.map(i => x[i]), y: at.map(i => s.v[i]), customdata: at, text: at.map(hover),
        marker: {size: drift ? 11 : 6, color: drift ? DRIFT : COLOURS[code],
                 symbol: drift ? 'diamond' : 'circle'},
        hovertemplate: '%{x|%Y-%m-%d %H:%M}<br>%{y} ' + s.unit + '<br>%{text}<extra></extra>'});
    }
    if (s.rb.length) traces.push({name: 're-baseline', x: s.rb.map(r => r[0] * 1000), y: s.rb.map(r => r[1]),
      mode: 'markers', marker: {symbol: 'triangle-down', size: 12, color: '#1f4e99'},
      customdata: s.rb.map(r => r[2] + ': ' + r[3]),
      hovertemplate: 're-baseline to %{y} ' + s.unit +
        '<br>%{x|%Y-%m-%d %H:%M}<br>%{customdata}<extra></extra>'});
    const shapes = s.rb.map(r => ({type: 'line', xref: 'x', yref: 'paper', x0: r[0] * 1000, x1: r[0] * 1000,
      y0: 0, y1: 1, line: {color: '#1f4e99', width: 1, dash: 'dot'}}));
    Plotly.newPlot(div, traces, {height: 300, margin: {l: 60, r: 20, t: 10, b: 40}, hovermode: 'closest',
      xaxis: {type: 'date'}, yaxis: {title: {text: s.unit}}, shapes,
      legend: {orientation: 'h', y: 1.12}}, {displaylogo: false, responsive: true});
    div.on('plotly_click', ev => {
      const p = ev.points.find(p => p.data.meta === 'points');
      if (p && s.r[p.customdata]) window.open(s.r[p.customdata], '_blank');
    });
    div.dataset.drawn = '1';
  };
  const divs = Array.from(document.querySelectorAll('.chart'));
  const drawOne = div => { if (!div.dataset.drawn) draw(div, all[+div.dataset.index]); };
  window.drawAll = () => divs.forEach(drawOne);
  const seen = new IntersectionObserver(entries => entries.forEach(e => {
    if (e.isIntersecting) { seen.unobserve(e.target); drawOne(e.target); }
  }), {rootMargin: '300px'});
  divs.forEach(d => seen.observe(d));
  // Printing draws every chart first: a printout of half the charts would say nothing of the rest.
  window.addEventListener('beforeprint', window.drawAll);
  document.getElementById('status').textContent = '';
  document.body.dataset.ready = '1';
})().catch(err => {
  document.getElementById('status').textContent = 'The charts could not be drawn here: ' + err +
    ' (the table above is complete; a current Chrome, Edge, Firefox or Safari draws them).';
  console.error(err);
});
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1em 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 90%; }}
tr.action td.level {{ color: #fff; background: #b00020; font-weight: bold; }}
tr.drift td.level {{ color: #fff; background: #6a3d9a; font-weight: bold; }}
tr.tolerance td.level {{ background: #ffe08a; font-weight: bold; }}
tr.ok td.level {{ color: #1b7f3b; }}
tr.not td.level {{ color: #888; }}
section {{ border-top: 1px solid #ddd; }}
h2 {{ font-size: 105%; margin: 0.6em 0 0; }}
.chart {{ height: 300px; }}
#status {{ color: #b00020; }}
</style></head>
<body>
<h1>{heading}</h1>
<p>Generated {generated}. {summary} Failures and drift first; click a metric for its chart, a
point on a chart for its report.</p>
{table}
<p id="status">Drawing the charts…</p>
{charts}
<script type="application/octet-stream" id="plotly-gz">{plotly}</script>
<script type="application/octet-stream" id="data-gz">{data}</script>
<script>{script}</script>
</body></html>
"""
