"""Peak memory of one CBCT phantom analysis, with its outputs (PDF, PNG, TXT, JSON), in a fresh process.

    python benchmarks/cbct_memory.py SERIES_DIR_OR_ZIP

SERIES_DIR_OR_ZIP: a folder of one CT series or a zip of one, e.g. the CatPhan 504 volumes that
`../shared/corpus/make_corpus.py OUT` writes (512 x 512 x 74 slices). The analysis runs in a child
process so that the figure is the analysis alone, as a worker would see it.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _analyse(source: str, queue: Any) -> None:
    from linac_qa.config import load_settings
    from linac_qa.execution.runner import run_job
    from linac_qa.grouping.plan import plan_directory
    from linac_qa.records.ledger import Ledger
    from linac_qa.run import Run

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    work_dir = Path(tempfile.mkdtemp(prefix="cbct-bench-"))
    src = Path(source)
    target = work_dir / src.name
    (shutil.copytree if src.is_dir() else shutil.copyfile)(src, target)
    settings = load_settings(text="general:\n  settle-seconds: 0\n")
    (acq,) = plan_directory(work_dir, settings, {}).plan.acquisitions
    run = Run(work_dir, settings, Ledger(work_dir / "ledger.sqlite"))
    started = time.perf_counter()
    result = run_job(run.job(acq)).result
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    shutil.rmtree(work_dir, ignore_errors=True)
    queue.put(
        {
            "slices": acq.variant.get("images", len(acq.files)),
            "status": result.status.value,
            "reason": result.reason,
            "seconds": round(seconds, 1),
            "peak_rss_mb": round(peak / 1024, 1),
            "rss_after_imports_mb": round(baseline / 1024, 1),
        }
    )


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_analyse, args=(sys.argv[1], queue))
    child.start()
    report = queue.get()
    child.join()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
