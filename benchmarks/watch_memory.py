"""Memory of a long-running watch (the watch issue, acceptance 2): feed it many acquisitions and see
whether any process it started grows.

    python benchmarks/watch_memory.py [--acquisitions 500] [--burst 10] [--workdir DIR] [--api URL]
                                      [--workers N] [--worker-max-analyses 50]

It builds a few small fixture images once (starshots, FC-2 light/radiation images and open fields,
several seeds of each), writes a config (settle-seconds 1, poll-seconds 2), and starts
`python -m flows.watch DIR --config CFG` exactly as a user would: without PREFECT_API_URL (unless
`--api` gives one), so Prefect starts its temporary server as a child of the watch, and that server
counts as one of the processes the watch started. PREFECT_HOME is a folder of the workdir, so that
the server's database starts empty and other jobs on the machine do not share (and lock) it.

Acquisitions arrive in bursts: `--burst` copies of the fixtures under new names that keep the QA
keywords (`RI.QA.Starshot_0001.dcm`), then the benchmark waits until every one of them is recorded
in the ledger and the watch is idle before the next burst. That is how a console's export looks (a
QA session sends a handful of images, then nothing for a while), and it gives a quiescent point
after every burst, so that memory is compared between like states rather than caught mid-analysis.

Every `SAMPLE_SECONDS` the process tree of the watch is sampled (`process_tree.py`): RSS and USS
of every process, classified as watch (the process started), worker (a spawned analysis worker),
server (Prefect's temporary server), tracker (multiprocessing's resource tracker) or other. Worker
PIDs are followed over time: they must turn over, as the pool replaces a worker after
`worker-max-analyses` analyses.

The memory is read at the quiescent point after each burst; the points after acquisition 50, 100
and the last one are read more carefully (after `--quiet-seconds` more, the mean of several
samples). Growth is reported from 50 to the end (the acceptance figure: under 10 %), from 100 to
the end, and from 50 to the last point where the workers are at the same stage of their lives as at
50. The pool replaces its whole set of workers every `workers x worker-max-analyses` acquisitions
(100 by default on 2 cores), and a worker grows by about 100 MB over its first analyses as pylinac
and matplotlib fill their caches: with 500 acquisitions the last point has workers just replaced
and the 50 point has workers in mid-life, which flatters the end; 100 -> 500 (both just after a
replacement) and 50 -> 450 (both mid-life) compare like with like.

Then the watch is stopped with SIGINT (it must exit 0) and the ledger is checked: each acquisition
exactly one result, none an error. Everything goes to the workdir: the watch's log `watch.log` and
the figures `watch_memory.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import process_tree
import psutil
from harness import PYTHON, REPO, flow_env, recorded_results, run_counts, say
from process_tree import Sample, TreeSampler

SAMPLE_SECONDS = 0.5
MB = 1024 * 1024
ROLES = ("watch", *process_tree.ROLES)
MAX_GROWTH_PERCENT = 10.0
# Fixture kinds: name pattern (keeps the QA keywords) and the synthetic generator.
KINDS = {
    "starshot": "RI.QA.Starshot_{n:04d}.dcm",
    "light-rad": "RI.QA.LightRad_FC2_{n:04d}.dcm",
    "open-field": "RI.QA.Open_Field_6X_{n:04d}.dcm",
}
# The watch is idle when its process and its workers together use less CPU than this (one core = 1).
IDLE_CPU = 0.10
IDLE_SECONDS = 1.5  # ... for this long, with every run finished and the log quiet


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--acquisitions", type=int, default=500, help="how many acquisitions to feed")
    p.add_argument("--burst", type=int, default=10, help="acquisitions copied at once")
    p.add_argument("--workdir", type=Path, help="default: a new folder under the temporary folder")
    p.add_argument("--api", metavar="URL", help="PREFECT_API_URL for the watch (default: a temporary server)")
    p.add_argument("--workers", type=int, help="general.workers (default: every core)")
    p.add_argument("--worker-max-analyses", type=int, default=50)
    p.add_argument("--kinds", default=",".join(KINDS), help=f"fixture kinds, from {', '.join(KINDS)}")
    p.add_argument("--variants", type=int, default=4, help="fixture images (seeds) per kind")
    p.add_argument("--quiet-seconds", type=float, default=5.0, help="extra wait before a key point")
    p.add_argument("--burst-timeout", type=float, default=900.0, help="seconds a burst may take")
    args = p.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or any(k not in KINDS for k in kinds):
        p.error(f"--kinds: choose from {', '.join(KINDS)}")
    args.kinds = kinds
    if args.acquisitions < 1 or args.burst < 1 or args.variants < 1:
        p.error("--acquisitions, --burst and --variants must be at least 1")
    return args


# ------------------------------------------------------------------ fixtures, config, the watch
def build_fixtures(folder: Path, kinds: list[str], variants: int) -> list[tuple[str, Path]]:
    """(kind, image) for every kind and seed, interleaved so that consecutive acquisitions differ."""
    from linac_qa.testing import synthetic

    makers: dict[str, Callable[..., Path]] = {
        "starshot": synthetic.starshot,
        "light-rad": synthetic.light_rad,
        "open-field": synthetic.open_field,
    }
    folder.mkdir(parents=True, exist_ok=True)
    fixtures = []
    for seed in range(variants):
        for kind in kinds:
            name = KINDS[kind].format(n=9000 + seed)
            fixtures.append((kind, makers[kind](folder / name, seed=seed)))
    return fixtures


def write_config(path: Path, args: argparse.Namespace) -> Path:
    lines = ["general:", "  settle-seconds: 1", "  poll-seconds: 2"]
    lines.append(f"  worker-max-analyses: {args.worker_max_analyses}")
    if args.workers:
        lines.append(f"  workers: {args.workers}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------ sampling the process tree
@dataclass
class CountedSample(Sample):
    acquisitions: int = 0  # results recorded at the time


@dataclass
class WorkerLife:
    pid: int
    first_seen: float
    last_seen: float
    first_acquisitions: int
    last_acquisitions: int
    max_rss: int = 0


class Sampler(threading.Thread):
    """Samples the watch's process tree every `SAMPLE_SECONDS`, in the background and when asked;
    keeps every sample (small) and follows the workers' lives."""

    def __init__(self, root: psutil.Process, started: float):
        super().__init__(name="sampler", daemon=True)
        self.tree = TreeSampler(root, "watch", started)
        self.acquisitions = 0  # set by the feeder
        self.samples: list[CountedSample] = []
        self.workers: dict[int, WorkerLife] = {}
        self.turnover: list[dict[str, Any]] = []  # worker started / ended, in order
        self.cost: list[float] = []  # seconds one sample took
        self._alive: set[int] = set()
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(SAMPLE_SECONDS)

    def halt(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def sample(self, full: bool = False) -> CountedSample | None:
        """`full`: USS too (tens of ms, so not every time)."""
        begun = time.perf_counter()
        with self._lock:
            taken = self.tree.sample(full)
            if taken is None:
                return None
            sample = CountedSample(taken.t, taken.members, self.acquisitions)
            self.samples.append(sample)
            self._follow_workers(sample)
            self.cost.append(time.perf_counter() - begun)
        return sample

    def _follow_workers(self, sample: CountedSample) -> None:
        alive = {m.pid: m for m in sample.by_role("worker")}
        for pid, member in alive.items():
            life = self.workers.get(pid)
            if life is None:
                life = self.workers[pid] = WorkerLife(pid, sample.t, sample.t, sample.acquisitions, 0)
                self._event(sample, "started", pid, alive)
            life.last_seen, life.last_acquisitions = sample.t, sample.acquisitions
            life.max_rss = max(life.max_rss, member.rss)
        for pid in sorted(self._alive - set(alive)):
            self._event(sample, "ended", pid, alive)
        self._alive = set(alive)

    def _event(self, sample: CountedSample, what: str, pid: int, alive: dict[int, Any]) -> None:
        self.turnover.append(
            {"t": sample.t, "acquisitions": sample.acquisitions, what: pid, "alive": sorted(alive)}
        )

    def latest(self, n: int = 1) -> list[CountedSample]:
        with self._lock:
            return self.samples[-n:]


# ------------------------------------------------------------------ feeding and waiting
@dataclass
class Checkpoint:
    acquisitions: int
    t: float
    batches: int
    rss: dict[str, int]  # per role, and "total"
    uss: dict[str, int]
    workers: list[int]  # RSS of each worker
    watch_threads: int
    watch_fds: int
    watch_cpu: float
    server_db_bytes: int
    careful: bool

    def as_json(self) -> dict[str, Any]:
        return self.__dict__


@dataclass
class Feed:
    copied_at: dict[str, float] = field(default_factory=dict)  # name -> monotonic
    recorded_at: dict[str, float] = field(default_factory=dict)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    idle_waits: list[float] = field(default_factory=list)


class WatchExited(Exception):
    pass


def watch_alive(proc: subprocess.Popen[bytes], log: Path) -> None:
    if proc.poll() is not None:
        tail = log.read_text("utf-8", "replace")[-4000:]
        raise WatchExited(f"the watch exited ({proc.returncode}); its log ends:\n{tail}")


def wait_recorded(
    directory: Path, feed: Feed, want: int, proc: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        results = recorded_results(directory)
        now = time.monotonic()
        for r in results:
            feed.recorded_at.setdefault(r.files[0], now)
        if len(results) >= want:
            return
        watch_alive(proc, log)
        if now > deadline:
            raise TimeoutError(f"{len(results)} of {want} recorded after {timeout:g} s")
        time.sleep(0.25)


def wait_idle(
    sampler: Sampler, directory: Path, proc: subprocess.Popen[bytes], log: Path, timeout: float = 300
) -> float:
    """Every run finished, the log quiet and the watch and its workers (nearly) idle for
    `IDLE_SECONDS`; returns how long that took."""
    begun = time.monotonic()
    quiet_since: float | None = None
    size = -1
    previous = sampler.latest()[-1]
    while time.monotonic() - begun < timeout:
        time.sleep(SAMPLE_SECONDS)
        watch_alive(proc, log)
        current = sampler.latest()[-1]
        started, finished = run_counts(directory)
        busy_cpu = 0.0
        if current.t > previous.t:  # CPU of processes alive in both samples
            before = {m.pid: m.cpu for m in previous.members if m.role in ("watch", "worker")}
            used = sum(m.cpu - before[m.pid] for m in current.members if m.pid in before)
            busy_cpu = used / (current.t - previous.t)
            if any(m.role == "worker" and m.pid not in before for m in current.members):
                busy_cpu = 1.0  # a worker just started: it is importing pylinac
        previous = current
        new_size = log.stat().st_size
        quiet = started == finished and new_size == size and busy_cpu < IDLE_CPU
        size = new_size
        if not quiet:
            quiet_since = None
            continue
        quiet_since = quiet_since or time.monotonic()
        if time.monotonic() - quiet_since >= IDLE_SECONDS:
            return time.monotonic() - begun
    say(f"warning: the watch did not become idle within {timeout:g} s")
    return time.monotonic() - begun


def checkpoint(
    sampler: Sampler, directory: Path, count: int, prefect_db: Path, careful: bool, quiet_seconds: float
) -> Checkpoint:
    samples: list[CountedSample] = []
    if careful:  # a few more seconds, then the mean of several samples
        time.sleep(quiet_seconds)
        for _ in range(5):
            if sample := sampler.sample(full=True):
                samples.append(sample)
            time.sleep(SAMPLE_SECONDS)
    if sample := sampler.sample(full=True):
        samples.append(sample)

    def mean(values: list[int]) -> int:
        return int(statistics.fmean(values)) if values else 0

    last = samples[-1]
    rss = {role: mean([s.rss(role) for s in samples]) for role in ROLES}
    rss["total"] = mean([s.rss() for s in samples])
    uss = {role: mean([s.uss(role) for s in samples]) for role in ROLES}
    uss["total"] = mean([s.uss() for s in samples])
    watch = last.by_role("watch")
    db_bytes = (
        sum(p.stat().st_size for p in prefect_db.parent.glob(prefect_db.name + "*")) if prefect_db else 0
    )
    return Checkpoint(
        acquisitions=count,
        t=last.t,
        batches=run_counts(directory)[0],
        rss=rss,
        uss=uss,
        workers=sorted(m.rss for m in last.by_role("worker")),
        watch_threads=watch[0].threads if watch else 0,
        watch_fds=watch[0].fds if watch else 0,
        watch_cpu=round(watch[0].cpu, 1) if watch else 0.0,
        server_db_bytes=db_bytes,
        careful=careful,
    )


def feed_all(
    args: argparse.Namespace,
    directory: Path,
    fixtures: list[tuple[str, Path]],
    sampler: Sampler,
    proc: subprocess.Popen[bytes],
    log: Path,
    prefect_db: Path,
) -> Feed:
    feed = Feed()
    key_points = {min(50, args.acquisitions), min(100, args.acquisitions), args.acquisitions}
    if same := same_phase_point(args, 50):
        key_points.add(same)
    n = 0
    while n < args.acquisitions:
        burst = range(n, min(n + args.burst, args.acquisitions))
        for i in burst:
            kind, image = fixtures[i % len(fixtures)]
            name = KINDS[kind].format(n=i + 1)
            shutil.copyfile(image, directory / name)
            feed.copied_at[name] = time.monotonic()
        n = burst.stop
        wait_recorded(directory, feed, n, proc, log, args.burst_timeout)
        sampler.acquisitions = n
        feed.idle_waits.append(wait_idle(sampler, directory, proc, log))
        careful = n in key_points
        point = checkpoint(sampler, directory, n, prefect_db, careful, args.quiet_seconds)
        feed.checkpoints.append(point)
        if careful or n % 50 == 0:
            say(
                f"{n} recorded, {point.batches} batches: total RSS {point.rss['total'] / MB:.0f} MB "
                f"(watch {point.rss['watch'] / MB:.0f}, workers {point.rss['worker'] / MB:.0f} "
                f"in {len(point.workers)}, server {point.rss['server'] / MB:.0f}), "
                f"{len(sampler.workers)} worker PIDs so far"
            )
    return feed


# ------------------------------------------------------------------ stopping and checking
def stop_watch(proc: subprocess.Popen[bytes], timeout: float = 180) -> tuple[int | None, float]:
    begun = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        say("the watch did not stop after SIGINT; a second SIGINT, then SIGKILL")
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
    return code, time.monotonic() - begun


def check_ledger(directory: Path, names: list[str]) -> dict[str, Any]:
    results = recorded_results(directory)
    per_file: dict[str, int] = {}
    for r in results:
        for f in r.files:
            per_file[f] = per_file.get(f, 0) + 1
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.status.value] = statuses.get(r.status.value, 0) + 1
    return {
        "results": len(results),
        "statuses": statuses,
        "analyses": sorted({r.analysis for r in results if r.analysis}),
        "missing": [n for n in names if n not in per_file],
        "duplicated": sorted(f for f, c in per_file.items() if c > 1),
        "unexpected": sorted(f for f in per_file if f not in set(names)),
        "errors": [{"files": r.files, "reason": r.reason} for r in results if r.is_problem],
    }


def log_noise(log: Path) -> dict[str, Any]:
    lines = log.read_text("utf-8", "replace").splitlines()
    levels = {
        level: sum(f"| {level}" in line for line in lines) for level in ("WARNING", "ERROR", "CRITICAL")
    }
    tracebacks = sum(line.startswith("Traceback") for line in lines)
    warn_lines: dict[str, int] = {}
    for line in lines:
        if "| WARNING" in line or "| ERROR" in line or "Warning:" in line:
            text = line.split("| ", 2)[-1][:160]
            warn_lines[text] = warn_lines.get(text, 0) + 1
    top = sorted(warn_lines.items(), key=lambda kv: -kv[1])[:10]
    return {
        "lines": len(lines),
        "bytes": log.stat().st_size,
        **levels,
        "tracebacks": tracebacks,
        "top_warnings": [{"count": c, "text": t} for t, c in top],
    }


# ------------------------------------------------------------------ figures
def same_phase_point(args: argparse.Namespace, start: int) -> int | None:
    """The last point after `start` at which the workers are as far through their lives as at
    `start`: the pool replaces its whole set every `workers x worker-max-analyses` acquisitions, so
    comparing a point just after a replacement (fresh workers, pylinac's caches empty) with one in
    mid-life flatters the later point. None when there is no such point but `start` itself."""
    period = (args.workers or os.cpu_count() or 1) * args.worker_max_analyses
    point = start + (args.acquisitions - start) // period * period
    return point if start < point <= args.acquisitions and point % args.burst == 0 else None


def growth(a: Checkpoint, b: Checkpoint) -> dict[str, float | None]:
    def pct(x: float, y: float) -> float | None:
        return round(100.0 * (y - x) / x, 1) if x else None

    out = {role: pct(a.rss[role], b.rss[role]) for role in (*ROLES, "total")}
    out["per_worker_mean"] = pct(
        statistics.fmean(a.workers) if a.workers else 0, statistics.fmean(b.workers) if b.workers else 0
    )
    out["uss_total"] = pct(a.uss["total"], b.uss["total"])
    out["total_without_workers"] = pct(a.rss["total"] - a.rss["worker"], b.rss["total"] - b.rss["worker"])
    return out


def slope_mb_per_100(points: list[Checkpoint], role: str) -> float | None:
    """Least-squares growth of a role's RSS per 100 acquisitions, over the given points."""
    if len(points) < 3:
        return None
    xs = [p.acquisitions for p in points]
    ys = [(p.rss[role] if role != "total" else p.rss["total"]) / MB for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return (
        round(100 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den, 2) if den else None
    )


def figures(
    args: argparse.Namespace,
    feed: Feed,
    sampler: Sampler,
    wall: float,
    exit_code: int | None,
    stop_seconds: float,
    stop_t: float,
    ledger_check: dict[str, Any],
    leftovers: list[str],
    log: Path,
) -> dict[str, Any]:
    points = {p.acquisitions: p for p in feed.checkpoints}
    first_copy = min(feed.copied_at.values())
    last_record = max(feed.recorded_at.values())
    latencies = sorted(
        feed.recorded_at[n] - feed.copied_at[n] for n in feed.copied_at if n in feed.recorded_at
    )
    peak_sample = max(sampler.samples, key=lambda s: s.rss())
    lives = sorted(sampler.workers.values(), key=lambda w: w.first_seen)
    retired = [w for w in lives if w.last_seen < stop_t - 2 * SAMPLE_SECONDS]
    comparisons = {}
    last = points[args.acquisitions]
    for start in (50, 100):
        if start in points and start < args.acquisitions:
            comparisons[f"{start}->{args.acquisitions}"] = growth(points[start], last)
    if (same := same_phase_point(args, 50)) and 50 in points and same in points:
        comparisons[f"50->{same} (same worker phase)"] = growth(points[50], points[same])
    tail = [p for p in feed.checkpoints if p.acquisitions >= min(100, args.acquisitions)]
    return {
        "acquisitions": args.acquisitions,
        "burst": args.burst,
        "api": args.api or "temporary server",
        "workers_configured": args.workers or os.cpu_count(),
        "worker_max_analyses": args.worker_max_analyses,
        "kinds": args.kinds,
        "wall_seconds": round(wall, 1),
        "feeding_seconds": round(last_record - first_copy, 1),
        "acquisitions_per_minute": round(60 * args.acquisitions / (last_record - first_copy), 1),
        "latency_seconds": {
            "median": round(statistics.median(latencies), 1),
            "p90": round(latencies[int(0.9 * (len(latencies) - 1))], 1),
            "max": round(latencies[-1], 1),
        },
        "idle_wait_seconds_median": round(statistics.median(feed.idle_waits), 1),
        "batches": last.batches,
        "bursts": len(feed.checkpoints),
        "exit_code": exit_code,
        "stop_seconds": round(stop_seconds, 1),
        "leftover_processes": leftovers,
        "ledger": ledger_check,
        "growth_percent": comparisons,
        "slope_mb_per_100_acquisitions_from_100": {
            role: slope_mb_per_100(tail, role) for role in (*ROLES, "total")
        },
        "peak": {
            "total_rss": peak_sample.rss(),
            "at_t": peak_sample.t,
            "at_acquisitions": peak_sample.acquisitions,
            "by_role": {role: max(s.rss(role) for s in sampler.samples) for role in ROLES},
            "one_worker": max((w.max_rss for w in lives), default=0),
        },
        "workers": {
            "distinct_pids": len(lives),
            "retired_while_running": len(retired),
            "lives": [w.__dict__ for w in lives],
            "turnover": sampler.turnover,
        },
        "sampling": {
            "samples": len(sampler.samples),
            "mean_cost_ms": round(1000 * statistics.fmean(sampler.cost), 1),
            "max_cost_ms": round(1000 * max(sampler.cost), 1),
        },
        "log": log_noise(log),
        "checkpoints": [p.as_json() for p in feed.checkpoints],
        "series": [
            {
                "t": s.t,
                "acquisitions": s.acquisitions,
                **{r: s.rss(r) for r in ROLES},
                "workers": len(s.by_role("worker")),
            }
            for s in sampler.samples
        ],
    }


def table(f: dict[str, Any], points: dict[int, Checkpoint]) -> str:
    def mb(x: float) -> str:
        return f"{x / MB:.0f}"

    rows = [
        f"{'acquisitions':>12} {'batches':>7} {'watch':>7} {'workers':>8} {'n':>2} {'per worker':>15} "
        f"{'server':>7} {'tracker':>7} {'other':>6} {'total':>7} {'USS total':>9}   (RSS, MB)"
    ]
    for count in sorted(points):
        p = points[count]
        per = "/".join(mb(w) for w in p.workers) or "-"
        rows.append(
            f"{count:>12} {p.batches:>7} {mb(p.rss['watch']):>7} {mb(p.rss['worker']):>8} "
            f"{len(p.workers):>2} {per:>15} {mb(p.rss['server']):>7} {mb(p.rss['tracker']):>7} "
            f"{mb(p.rss['other']):>6} "
            f"{mb(p.rss['total']):>7} {mb(p.uss['total']):>9}"
        )
    peak = f["peak"]
    rows.append(
        f"{'peak':>12} {'':>7} {mb(peak['by_role']['watch']):>7} {mb(peak['by_role']['worker']):>8} {'':>2} "
        f"{mb(peak['one_worker']):>15} {mb(peak['by_role']['server']):>7} "
        f"{mb(peak['by_role']['tracker']):>7} {mb(peak['by_role']['other']):>6} "
        f"{mb(peak['total_rss']):>7}   (per role: each role's own peak; total: the tree's peak sum)"
    )
    rows.append("")
    for name, g in f["growth_percent"].items():
        parts = ", ".join(f"{k} {v:+.1f} %" for k, v in g.items() if v is not None)
        rows.append(f"growth {name}: {parts}")
    slopes = f["slope_mb_per_100_acquisitions_from_100"]
    rows.append(
        "trend from 100 on (MB per 100 acquisitions, least squares over every burst): "
        + ", ".join(f"{k} {v:+.2f}" for k, v in slopes.items() if v is not None)
    )
    w = f["workers"]
    led = f["ledger"]
    lat = f["latency_seconds"]
    rows += [
        "",
        f"wall {f['wall_seconds']:.0f} s; feeding {f['feeding_seconds']:.0f} s; "
        f"{f['acquisitions_per_minute']:.1f} acquisitions/minute "
        f"(bursts of {f['burst']}, waiting idle between)",
        f"latency copy -> recorded: median {lat['median']} s, p90 {lat['p90']} s, max {lat['max']} s; "
        f"{f['batches']} batches for {f['bursts']} bursts",
        f"worker PIDs: {w['distinct_pids']} distinct, "
        f"{w['retired_while_running']} retired while the watch ran",
        f"stop: exit code {f['exit_code']} after {f['stop_seconds']} s; "
        f"leftover processes {f['leftover_processes']}",
        f"ledger: {led['results']} results {led['statuses']}; missing {len(led['missing'])}, "
        f"duplicated {len(led['duplicated'])}, unexpected {len(led['unexpected'])}, "
        f"error/failed {len(led['errors'])}",
        f"log: {f['log']['lines']} lines, {f['log']['WARNING']} warnings, {f['log']['ERROR']} errors, "
        f"{f['log']['tracebacks']} tracebacks",
    ]
    return "\n".join(rows)


def verdict(f: dict[str, Any]) -> list[str]:
    problems = []
    for name, g in f["growth_percent"].items():
        if g["total"] is not None and g["total"] >= MAX_GROWTH_PERCENT:
            problems.append(f"total RSS grew {g['total']:+.1f} % ({name}; limit {MAX_GROWTH_PERCENT:g} %)")
    if f["exit_code"] != 0:
        problems.append(f"the watch exited {f['exit_code']} after SIGINT")
    led = f["ledger"]
    if led["missing"] or led["duplicated"] or led["unexpected"]:
        problems.append("the ledger does not hold exactly one result per acquisition")
    if any(e for e in led["errors"]):
        problems.append(f"{len(led['errors'])} results are errors or failures")
    if f["acquisitions"] > f["worker_max_analyses"] and f["workers"]["retired_while_running"] == 0:
        problems.append("no worker was retired")
    return problems


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="watch-memory-"))).resolve()
    directory = workdir / "qa"
    if directory.exists() and any(directory.iterdir()):
        print(f"error: {directory} is not empty: give a new --workdir", file=sys.stderr)
        return 2
    directory.mkdir(parents=True, exist_ok=True)
    say(f"workdir {workdir}")
    fixtures = build_fixtures(workdir / "fixtures", args.kinds, args.variants)
    config = write_config(workdir / "watch.yml", args)
    log = workdir / "watch.log"
    prefect_db = workdir / "prefect-home" / "prefect.db"
    cmd = [PYTHON, "-m", "flows.watch", str(directory), "--config", str(config)]
    say(f"starting {' '.join(cmd)}")
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=flow_env(workdir, args.api),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    root = psutil.Process(proc.pid)
    sampler = Sampler(root, started)
    sampler.start()
    try:
        while b"Ctrl-C stops" not in log.read_bytes():
            watch_alive(proc, log)
            if time.monotonic() - started > 180:
                raise TimeoutError("the watch did not start within 180 s")
            time.sleep(0.5)
        say(f"watching after {time.monotonic() - started:.1f} s; feeding {args.acquisitions} acquisitions")
        feed = feed_all(args, directory, fixtures, sampler, proc, log, prefect_db)
    except (WatchExited, TimeoutError, KeyboardInterrupt) as exc:
        say(f"aborted: {exc}")
        stop_watch(proc, timeout=60)
        sampler.halt()
        sampler.tree.end_outlivers(grace=5)
        return 1
    sampler.sample()
    stop_t = time.monotonic() - started
    say("stopping the watch (SIGINT)")
    exit_code, stop_seconds = stop_watch(proc)
    sampler.halt()
    # A stopped watch leaves nothing behind: what is still alive 15 s later is reported (and ended).
    leftovers, _ = sampler.tree.end_outlivers(grace=15)
    wall = time.monotonic() - started
    names = list(feed.copied_at)
    f = figures(
        args,
        feed,
        sampler,
        wall,
        exit_code,
        stop_seconds,
        stop_t,
        check_ledger(directory, names),
        leftovers,
        log,
    )
    (workdir / "watch_memory.json").write_text(json.dumps(f, indent=1), encoding="utf-8")
    points = {
        p.acquisitions: p
        for p in feed.checkpoints
        if p.careful or p.acquisitions % 100 == 0 or p.acquisitions == args.acquisitions
    }
    print(table(f, points))
    problems = verdict(f)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print(f"figures: {workdir / 'watch_memory.json'}; log: {log}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
