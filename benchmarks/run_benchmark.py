"""Speed benchmark (issue 7): the service against pylinac alone, on the same data, with the same outputs.

    python benchmarks/run_benchmark.py [--scale N] [--seed S] [--no-cbct] [--workdir DIR]
                                       [--skip-baseline] [--repeats N] [--archive-files N]
                                       [--classify-files N]

What it times (wall seconds, every step in a fresh process unless said otherwise):
  (a) pylinac alone, sequentially, in one process, on every acquisition of the corpus, writing a PDF
      and a PNG of each (`../shared/corpus/check_with_pylinac.py --pdf FOLDER --png CORPUS`);
  (b) `python -m flows.process CORPUS --json` on the same data (PDF, PNG, TXT and JSON of each);
  (c) the same command again, with nothing new;
  (d) classification alone (`linac_qa.intake.classify.classify_files`, in this process, headers only) over
      every file of the corpus, and over UID-named DICOM files whose QA keywords are only in their
      headers (the files/s figure);
  and an empty directory's `python -m flows.process EMPTY --json` (the start-up every run pays: a
  temporary Prefect server, about 20 s). (c) minus that start-up is what a run costs per file already
  analysed; it is also measured on an archive of at least `--archive-files` analysed files, built
  from copies of CT series when the corpus is smaller.

Peak memory of (b) is the largest sum of the resident memory of the whole process tree (the flow,
its worker processes and Prefect's temporary server), sampled every 0.2 s. Every passed or failed
result of (b) must list a `.pdf` and a `.png` that exist.

The corpus comes from `../shared/corpus/make_corpus.py` when that folder exists beside the repository,
else from the project's own synthetic data (`linac_qa.testing.demo`), analysed for (a) by an in-process loop
of plain pylinac calls. Everything is written under `--workdir` (default: a folder under the system's
temporary folder), never into the repository. No network access is needed. PREFECT_API_URL is unset
for every run, as for a user without a server; PREFECT_HOME is a folder of the workdir, so that other
runs on the machine do not share (and lock) its database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from harness import (
    PYTHON,
    REPO,
    SHARED_CORPUS,
    acceptance_corpus,
    aligned,
    flow_env,
    load_average,
    process_command,
    say,
    settle,
)
from process_tree import TreeSampler

SAMPLE_SECONDS = 0.2
# Acceptance figures of issue 7 (2 cores).
MAX_RATIO = 0.65
MIN_BASELINE_SECONDS = 120.0
MAX_NOTHING_NEW_SECONDS = 2.0
MIN_ARCHIVE_FILES = 1000
MIN_FILES_PER_SECOND = 500.0
MAX_PEAK_BYTES = 4 * 1024**3


# ------------------------------------------------------------------ running and measuring processes
@dataclass
class Timed:
    seconds: float
    exit_code: int
    peak_rss_bytes: int = 0
    summary: dict[str, Any] | None = None
    stderr_tail: str = ""
    # CPU seconds of the process tree by role (flow, worker, server), as last sampled: where the time
    # went, and a check on how busy the machine was (other load stretches wall times, not these).
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    load_average: tuple[float, float] = (0.0, 0.0)  # 1-minute load at the start and at the end


def run_timed(cmd: list[str], env: dict[str, str], log: Path, json_out: bool = False) -> Timed:
    """Runs `cmd`, sampling its process tree; stdout is parsed as JSON when asked."""
    log.parent.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    with log.open("wb") as err, tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO)
        sampler = TreeSampler(psutil.Process(child.pid), "flow")
        while child.poll() is None:
            sampler.sample()
            time.sleep(SAMPLE_SECONDS)
        seconds = time.perf_counter() - started
        out.seek(0)
        stdout = out.read().decode("utf-8", "replace")
    tail = "\n".join(log.read_text("utf-8", "replace").splitlines()[-15:])
    summary = None
    if json_out:
        try:
            summary = json.loads(stdout)
        except json.JSONDecodeError:
            summary = None
    return Timed(
        round(seconds, 2),
        child.returncode,
        sampler.peak_rss,
        summary,
        tail,
        sampler.cpu_by_role(),
        (load_before, load_average()),
    )


# ------------------------------------------------------------------ data
def input_files(folder: Path) -> list[str]:
    """The corpus's files, relative, as discovery would see them before any run (no state folder)."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if (p.is_file() or p.is_symlink()) and ".linac-qa" not in p.relative_to(folder).parts
    )


def ct_series_folders(corpus: Path) -> list[Path]:
    """Folders that hold a CT series (e.g. the corpus's CatPhan volume)."""
    folders: dict[Path, int] = {}
    for path in corpus.rglob("*.dcm"):
        if path.name.startswith("CT."):
            folders[path.parent] = folders.get(path.parent, 0) + 1
    return [f for f, n in sorted(folders.items()) if n >= 20]


def one_ct_series(scratch: Path) -> Path:
    from linac_qa.testing.synthetic_ct import catphan504_series

    folder = scratch / "catphan"
    if not folder.is_dir():
        catphan504_series(folder)
    return folder


def build_archive(archive: Path, corpus: Path, scratch: Path, min_files: int) -> int:
    """A QA archive of CT series folders (one per night), at least `min_files` files in all."""
    if archive.exists():
        shutil.rmtree(archive)
    series = ct_series_folders(corpus) or [one_ct_series(scratch)]
    count, night = 0, 0
    while count < min_files:
        source = series[night % len(series)]
        night += 1
        target = archive / f"night-{night:03d}" / source.name
        shutil.copytree(source, target)
        count += sum(1 for _ in target.iterdir())
    settle(archive)
    return count


def build_uid_set(target: Path, corpus: Path, scratch: Path, count: int) -> int:
    """DICOM images named by UID only (`1.2.826.0.1.3680043.8.498.N.dcm`), whose QA keywords are in
    their headers alone: RT images labelled after their original name, CT slices described as a
    CatPhan scan. What a TPS or PACS export looks like."""
    import pydicom
    from pydicom.uid import generate_uid

    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    sources = [
        p
        for p in sorted(corpus.rglob("*"))
        if p.is_file() and _is_image(p) and ".linac-qa" not in p.parts and "_analysis" not in p.name
    ]
    if not sources:
        sources = [*one_ct_series(scratch).iterdir()]
    series: dict[tuple[Path, int], str] = {}
    for i in range(count):
        src = sources[i % len(sources)]
        ds = pydicom.dcmread(src)
        copy = i // len(sources)
        uid = generate_uid(prefix="1.2.826.0.1.3680043.8.498.")
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.SeriesInstanceUID = series.setdefault((src.parent, copy), generate_uid())
        if ds.get("Modality") == "RTIMAGE":
            # RTImageName (LO) holds 64 characters; RTImageLabel (SH) only 16. Latin-1 only.
            ds.RTImageName = src.name.split(".dcm")[0].encode("ascii", "replace").decode()[:64]
        else:
            ds.SeriesDescription = "CBCT CatPhan504 Head"
        ds.save_as(target / f"{uid}.dcm")
    settle(target)
    return count


def _is_image(path: Path) -> bool:
    with path.open("rb") as fp:
        head = fp.read(132)
    if head[128:132] != b"DICM":
        return False
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality", "Rows"])
    except Exception:
        return False
    return ds.get("Modality") in ("RTIMAGE", "CT") and bool(ds.get("Rows"))


# ------------------------------------------------------------------ the measurements
def baseline(corpus: Path, out: Path, logs: Path) -> Timed:
    """(a): pylinac alone, sequentially, in one process, with a PDF and a PNG of each acquisition."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if (SHARED_CORPUS / "check_with_pylinac.py").is_file():
        cmd = [PYTHON, str(SHARED_CORPUS / "check_with_pylinac.py"), "--pdf", str(out), "--png", str(corpus)]
    else:
        cmd = [PYTHON, str(Path(__file__)), "pylinac-alone", str(corpus), str(out)]
    return run_timed(cmd, dict(os.environ, MPLBACKEND="Agg"), logs / "a-pylinac-alone.log")


def pylinac_alone(corpus: Path, out: Path) -> int:
    """The baseline without the shared corpus: routing is decided first (untimed by nature: it is
    what a physicist knows of their own files), then plain pylinac calls, one after another."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    from linac_qa.analyses import REGISTRY
    from linac_qa.analyses.base import Inputs
    from linac_qa.config import load_settings
    from linac_qa.grouping.plan import plan_directory
    from linac_qa.intake.zipsafe import ZipLimits, safe_extract_dicoms

    settings = load_settings(text="general:\n  settle-seconds: 0\n")
    for n, acq in enumerate(plan_directory(corpus, settings, {}).plan.acquisitions):
        analysis = REGISTRY[acq.analysis]
        section = settings.section(acq.analysis)
        paths = [corpus / f for f in acq.files]
        with tempfile.TemporaryDirectory() as tmp:
            if len(paths) == 1 and paths[0].suffix.lower() == ".zip":
                inputs = Inputs(safe_extract_dicoms(paths[0], Path(tmp), ZipLimits()), zip_path=paths[0])
            else:
                inputs = Inputs(paths)
            try:
                obj = analysis.load(inputs, acq, section)
                analysis.run(obj, acq, section)
                obj.publish_pdf(str(out / f"r{n}.pdf"))
                analysis.save_image(obj, out / f"i{n}.png")
            except Exception as exc:
                print(f"{acq.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            plt.close("all")
    return 0


def classification(directory: Path, files: list[str]) -> dict[str, Any]:
    """(d): classification alone, in this process (settings and pydicom already imported)."""
    from linac_qa.config import load_settings
    from linac_qa.intake.classify import classify_files

    settings = load_settings()
    classify_files(directory, files[:5], settings)  # imports and first-call costs, not per file
    started = time.perf_counter()
    classified = classify_files(directory, files, settings)
    seconds = time.perf_counter() - started
    return {
        "files": len(files),
        "seconds": round(seconds, 3),
        "files_per_second": round(len(files) / seconds, 1) if seconds else None,
        "routed": sum(1 for c in classified if c.analysis is not None),
    }


def check_outputs(summary: dict[str, Any], directory: Path) -> dict[str, Any]:
    """Every passed or failed result lists a .pdf and a .png (and .txt, .json) that exist."""
    problems: list[str] = []
    analysed = 0
    for result in summary.get("results", []):
        if result["status"] not in ("passed", "failed"):
            continue
        analysed += 1
        outputs = result.get("outputs") or []
        suffixes = {Path(o).suffix for o in outputs}
        missing = [s for s in (".pdf", ".png", ".txt", ".json") if s not in suffixes]
        absent = [o for o in outputs if not (directory / o).is_file()]
        if missing or absent:
            problems.append(f"{result['files'][0]}: missing {missing or ''} absent {absent or ''}")
    return {"analysed": analysed, "complete": analysed - len(problems), "problems": problems}


def statuses(summary: dict[str, Any] | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in (summary or {}).get("results", []):
        counts[result["status"]] = counts.get(result["status"], 0) + 1
    return counts


# ------------------------------------------------------------------ report
@dataclass
class Figures:
    corpus: dict[str, Any] = field(default_factory=dict)
    a_pylinac_alone_s: float | None = None
    a_reused: bool = False
    a_cpu_s: dict[str, float] = field(default_factory=dict)
    a_load: tuple[float, float] | None = None
    b_process_s: float | None = None
    b_exit_code: int | None = None
    b_statuses: dict[str, int] = field(default_factory=dict)
    b_peak_rss_mb: float | None = None
    b_outputs: dict[str, Any] = field(default_factory=dict)
    b_cpu_s: dict[str, float] = field(default_factory=dict)
    b_load: tuple[float, float] | None = None
    c_nothing_new_s: list[float] = field(default_factory=list)
    c_results: int | None = None
    empty_startup_s: list[float] = field(default_factory=list)
    warmup_s: float | None = None
    archive: dict[str, Any] = field(default_factory=dict)
    d_corpus: dict[str, Any] = field(default_factory=dict)
    d_uid: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)


def judge(f: Figures) -> None:
    empty = min(f.empty_startup_s)
    a, b = f.a_pylinac_alone_s, f.b_process_s
    f.checks = {
        "(a) >= 120 s": a is not None and a >= MIN_BASELINE_SECONDS,
        "(b)/(a) <= 0.65": a is not None and b is not None and b / a <= MAX_RATIO,
        "(c) - empty < 2 s on >= 1000 files": bool(f.archive)
        and f.archive["files"] >= MIN_ARCHIVE_FILES
        and min(f.archive["nothing_new_s"]) - empty < MAX_NOTHING_NEW_SECONDS,
        "classification >= 500 files/s": (f.d_uid.get("files_per_second") or 0) >= MIN_FILES_PER_SECOND,
        "peak memory < 4 GB": f.b_peak_rss_mb is not None and f.b_peak_rss_mb * 1024**2 < MAX_PEAK_BYTES,
        "every analysed result has PDF and PNG": bool(f.b_outputs) and not f.b_outputs["problems"],
    }


def table(f: Figures) -> str:
    assert f.a_pylinac_alone_s is not None and f.b_process_s is not None and f.b_peak_rss_mb is not None
    empty = min(f.empty_startup_s)
    c = min(f.c_nothing_new_s)
    arch = f.archive
    rows = [
        (
            "corpus",
            f"{f.corpus['acquisitions']} acquisitions, {f.corpus['files']} files, "
            f"{f.corpus['megabytes']} MB, scale {f.corpus['scale']} ({f.corpus['source']})",
        ),
        (
            "(a) pylinac alone, sequential, PDF+PNG",
            f"{f.a_pylinac_alone_s:8.1f} s"
            + (" (reused)" if f.a_reused else f"  CPU {f.a_cpu_s} s, load {f.a_load}"),
        ),
        ("(b) flows.process CORPUS --json", f"{f.b_process_s:8.1f} s  exit {f.b_exit_code}  {f.b_statuses}"),
        ("(b) CPU by process, load average", f"{f.b_cpu_s} s, load {f.b_load} (2 cores)"),
        ("(c) again, nothing new", f"{c:8.1f} s  (runs: {f.c_nothing_new_s}; {f.c_results} results)"),
        ("empty-directory start-up", f"{empty:8.1f} s  (runs: {f.empty_startup_s}; warm-up {f.warmup_s})"),
        ("(c) - empty start-up, corpus", f"{c - empty:8.2f} s  ({f.corpus['files']} files)"),
        (
            "(c) - empty start-up, archive",
            f"{min(arch['nothing_new_s']) - empty:8.2f} s  "
            f"({arch['files']} analysed files; runs {arch['nothing_new_s']}; first run {arch['first_s']} s)",
        ),
        (
            "(d) classification, corpus",
            f"{f.d_corpus['seconds']:8.2f} s  {f.d_corpus['files']} files, "
            f"{f.d_corpus['files_per_second']} files/s",
        ),
        (
            "(d) classification, UID-named",
            f"{f.d_uid['seconds']:8.2f} s  {f.d_uid['files']} files, "
            f"{f.d_uid['files_per_second']} files/s, {f.d_uid['routed']} routed by header",
        ),
        ("(b)/(a)", f"{f.b_process_s / f.a_pylinac_alone_s:8.3f}"),
        ("peak memory of (b), process tree", f"{f.b_peak_rss_mb:8.0f} MB"),
        (
            "outputs of (b)",
            f"{f.b_outputs['complete']}/{f.b_outputs['analysed']} passed/failed results "
            "with PDF, PNG, TXT and JSON on disk",
        ),
    ]
    lines = [*aligned(rows), ""]
    lines += [f"{'PASS' if ok else 'FAIL'}  {name}" for name, ok in f.checks.items()]
    return "\n".join(lines)


# ------------------------------------------------------------------ main
def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--scale", type=int, default=2, help="corpus scale (make_corpus.py --scale); default 2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-cbct", action="store_true", help="corpus without the CatPhan volumes")
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "linac-qa-benchmark",
        help="where the corpus, outputs and logs go (default: %(default)s)",
    )
    p.add_argument(
        "--skip-baseline",
        action="store_true",
        help="reuse (a) from the workdir's last figures.json for the same scale, seed and --no-cbct",
    )
    p.add_argument("--repeats", type=int, default=2, help="runs of (c) and of the empty start-up (min kept)")
    p.add_argument("--archive-files", type=int, default=MIN_ARCHIVE_FILES)
    p.add_argument("--classify-files", type=int, default=1000)
    return p.parse_args(argv)


def previous_baseline(path: Path, corpus_key: dict[str, Any]) -> float | None:
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    same = all(old.get("corpus", {}).get(k) == v for k, v in corpus_key.items())
    return old.get("a_pylinac_alone_s") if same else None


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "pylinac-alone":
        return pylinac_alone(Path(sys.argv[2]), Path(sys.argv[3]))
    args = parse(argv)
    work: Path = args.workdir.resolve()
    if work == REPO or REPO in work.parents:
        raise SystemExit("--workdir must be outside the repository")
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    figures_file = work / "figures.json"
    env = flow_env(work)
    f = Figures()
    corpus_key = {"scale": args.scale, "seed": args.seed, "no_cbct": args.no_cbct}
    reused = previous_baseline(figures_file, corpus_key) if args.skip_baseline else None
    if args.skip_baseline and reused is None:
        raise SystemExit(f"--skip-baseline: no figure for {corpus_key} in {figures_file}")

    say(f"building the corpus under {work}")
    corpus = work / "corpus"
    source = acceptance_corpus(corpus, scale=args.scale, seed=args.seed, no_cbct=args.no_cbct)
    files = input_files(corpus)
    megabytes = round(sum((corpus / p).stat().st_size for p in files) / 1e6, 1)
    f.corpus = {**corpus_key, "source": source, "files": len(files), "megabytes": megabytes}

    say("(d) classification over the corpus")
    f.d_corpus = classification(corpus, files)
    say(f"building {args.classify_files} UID-named DICOM files (keywords in headers only)")
    uid_dir = work / "uid-named"
    build_uid_set(uid_dir, corpus, work / "scratch", args.classify_files)
    f.d_uid = classification(uid_dir, input_files(uid_dir))

    if reused is None:
        say("(a) pylinac alone, sequentially (this takes a while)")
        a = baseline(corpus, work / "pylinac-alone", logs)
        if a.exit_code not in (0, 1):
            raise SystemExit(f"pylinac alone failed ({a.exit_code}):\n{a.stderr_tail}")
        f.a_pylinac_alone_s, f.a_cpu_s, f.a_load = a.seconds, a.cpu_seconds, a.load_average
    else:
        f.a_pylinac_alone_s, f.a_reused = reused, True

    say("warm-up: an empty directory (creates the Prefect database under the workdir)")
    empty = work / "empty"
    shutil.rmtree(empty, ignore_errors=True)
    empty.mkdir()
    f.warmup_s = run_timed(process_command(empty), env, logs / "warmup.log").seconds
    for i in range(args.repeats):
        say(f"empty-directory start-up {i + 1}/{args.repeats}")
        f.empty_startup_s.append(run_timed(process_command(empty), env, logs / f"empty-{i}.log").seconds)

    say("(b) flows.process on the corpus")
    b = run_timed(process_command(corpus), env, logs / "b-process.log", json_out=True)
    if b.summary is None:
        raise SystemExit(f"(b) printed no JSON summary (exit {b.exit_code}):\n{b.stderr_tail}")
    f.b_process_s, f.b_exit_code = b.seconds, b.exit_code
    f.b_peak_rss_mb = round(b.peak_rss_bytes / 1024**2, 1)
    f.b_statuses = statuses(b.summary)
    f.b_outputs = check_outputs(b.summary, corpus)
    f.b_cpu_s, f.b_load = b.cpu_seconds, b.load_average
    f.corpus["acquisitions"] = sum(1 for r in b.summary["results"] if r["analysis"] is not None)
    (work / "b-summary.json").write_text(json.dumps(b.summary, indent=1), encoding="utf-8")

    for i in range(args.repeats):
        say(f"(c) nothing new {i + 1}/{args.repeats}")
        c = run_timed(process_command(corpus), env, logs / f"c-again-{i}.log", json_out=True)
        f.c_nothing_new_s.append(c.seconds)
        f.c_results = len((c.summary or {}).get("results", [])) if c.summary else None

    archive = work / "archive"
    if len(files) >= args.archive_files:
        f.archive = {"files": len(files), "nothing_new_s": f.c_nothing_new_s, "first_s": f.b_process_s}
    else:
        count = build_archive(archive, corpus, work / "scratch", args.archive_files)
        say(f"archive of {count} CT slices: first run (analyses them)")
        first = run_timed(process_command(archive), env, logs / "archive-first.log", json_out=True)
        again = []
        for i in range(args.repeats):
            say(f"archive, nothing new {i + 1}/{args.repeats}")
            again.append(run_timed(process_command(archive), env, logs / f"archive-again-{i}.log").seconds)
        f.archive = {
            "files": count,
            "first_s": first.seconds,
            "first_statuses": statuses(first.summary),
            "nothing_new_s": again,
        }

    judge(f)
    figures_file.write_text(json.dumps(asdict(f), indent=1), encoding="utf-8")
    print(table(f))
    print(
        f"\nfigures: {figures_file}; logs: {logs}; median empty start-up "
        f"{statistics.median(f.empty_startup_s):.1f} s"
    )
    return 0 if all(f.checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
