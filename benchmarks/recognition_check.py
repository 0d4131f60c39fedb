"""Recognition by content, measured (issue 12, acceptance 6).

    python benchmarks/recognition_check.py [--workdir DIR] [--seed S] [--scale N]

Builds the acceptance corpus (`../shared/corpus/make_corpus.py OUT --no-cbct`), then takes every EPID
image out of it (single files, Winston-Lutz folders and zips alike) into one flat folder, each
renamed `RI.<SOPInstanceUID>.dcm` and stripped of every text that could name its test
(`linac_qa.testing.synthetic.strip_names`: labels, descriptions, the QA patient's name and ID, plan and
beam names). Each is classified by the product's own classification (`classify_files`, default
settings), and the table says, per true type from EXPECTED.json, how many acquisitions reached the
right analysis, how many were ignored and how many reached a wrong one. An acquisition is right when
every one of its images reached its analysis, wrong when any reached another.

The corpus has no VMAT test: the project's own synthetic DRGS and DRMLC pairs
(`linac_qa.testing.synthetic_vmat.vmat_pair`) are added as their own rows. A VMAT open image is, on its own,
an open field: it reaches field-analysis here, and only the grouping beside its DMLC image makes it
the pair's partner; its row counts it as expected when it reaches field-analysis.

Then the product's own grouping (`linac_qa.grouping.plan.plan`) runs over the flat folder, and the notes
say which planned acquisitions each Winston-Lutz set and VMAT image ended in (a set split or merged
shows there).

Acceptance: at least 90 % of the EPID acquisitions right and none wrong. Exit 0 when met. The table
goes to standard output, the figures to WORKDIR/recognition.json. Nothing is written into the
repository.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from harness import SHARED_CORPUS, acceptance_corpus, load_average, markdown_table

from linac_qa.config import load_settings
from linac_qa.grouping.plan import group_context, plan
from linac_qa.intake.classify import classify_files
from linac_qa.model import ClassifiedFile
from linac_qa.testing.synthetic import save_unnamed, strip_names
from linac_qa.testing.synthetic_vmat import vmat_pair

# The corpus's EPID types and the analysis each belongs to.
SECTIONS = {
    "picketfence": "picket-fence",
    "winstonlutz": "winston-lutz",
    "winstonlutz_2d": "winston-lutz",
    "starshot": "starshot",
    "field_analysis": "field-analysis",
    "lightrad": "light-rad",
    "vmat DMLC": "vmat",
    "vmat open": "field-analysis",  # alone, an open field; paired when grouped (see above)
}
MIN_RIGHT = 0.90


@dataclass
class Acquisition:
    key: str
    true_type: str
    files: list[str] = field(default_factory=list)  # names in the flat folder


@dataclass
class Row:
    acquisitions: int = 0
    right: int = 0
    ignored: int = 0
    wrong: int = 0
    error: int = 0
    images: int = 0
    wrong_routes: list[str] = field(default_factory=list)
    ignored_why: list[str] = field(default_factory=list)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "linac-qa-recognition")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=int, default=1)
    args = ap.parse_args(argv)
    corpus, flat = args.workdir / "corpus", args.workdir / "flat"
    if not (SHARED_CORPUS / "make_corpus.py").is_file():  # the demo drop has no EXPECTED.json
        raise SystemExit(f"needs {SHARED_CORPUS / 'make_corpus.py'}")
    acceptance_corpus(corpus, scale=args.scale, seed=args.seed, no_cbct=True)
    flat.mkdir(parents=True, exist_ok=True)
    for old in flat.iterdir():
        old.unlink()
    acquisitions, skipped = flatten(corpus, flat)
    acquisitions += vmat_acquisitions(args.workdir / "vmat", flat)
    names = [name for acq in acquisitions for name in acq.files]
    started, cpu = time.perf_counter(), time.process_time()
    results = {cf.path: cf for cf in classify_files(flat, names, load_settings())}
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    rows = tally(acquisitions, results)
    print(table(rows, skipped, len(names), seconds, cpu))
    print(grouped(acquisitions, list(results.values()), flat))
    epid = [r for t, r in rows.items() if not t.startswith("vmat")]
    right = sum(r.right for r in epid) / max(sum(r.acquisitions for r in epid), 1)
    wrong = sum(r.wrong for r in rows.values())
    passed = right >= MIN_RIGHT and wrong == 0
    print(
        f"\nEPID acquisitions right: {right:.0%} (need >= {MIN_RIGHT:.0%}); wrong: {wrong} (need 0): "
        + ("PASS" if passed else "FAIL")
    )
    figures = {
        "right_fraction": right,
        "wrong": wrong,
        "images": len(names),
        "classify_seconds": seconds,
        "classify_cpu_seconds": cpu,
        "skipped": skipped,
        "rows": {t: vars(r) for t, r in rows.items()},
        "files": {
            name: {"analysis": cf.analysis, "status": cf.status, "reason": cf.reason}
            for name, cf in results.items()
        },
    }
    (args.workdir / "recognition.json").write_text(json.dumps(figures, indent=1, default=str))
    return 0 if passed else 1


def flatten(corpus: Path, flat: Path) -> tuple[list[Acquisition], list[str]]:
    """Every EPID image of the corpus's EPID entries into `flat`, without names; and what was left
    out, with why. Junk counts when EXPECTED.json gives it an EPID type as its alternative (a
    Winston-Lutz image named like a picket fence); the rest of the junk (damaged files, a plan, a
    CT slice...) is the hostile-file tests' business, as are machine logs and CT series."""
    expected = json.loads((corpus / "EXPECTED.json").read_text(encoding="utf-8"))
    out, skipped = [], []
    for key, entry in expected["entries"].items():
        true_type = entry.get("alt", {}).get("type") if entry["type"] == "junk" else entry["type"]
        if true_type not in SECTIONS:
            continue
        images = [
            ds for ds in _datasets(corpus, key, entry) if ds is not None and ds.get("Modality") == "RTIMAGE"
        ]
        if images:
            out.append(Acquisition(key, true_type, [_unnamed(ds, flat) for ds in images]))
        else:
            skipped.append(f"{key} ({true_type}): not a DICOM RT image")
    return out, skipped


def _unnamed(ds: pydicom.Dataset, flat: Path) -> str:
    """`save_unnamed`, except that a second file of the same SOP instance (the corpus's misnamed
    Winston-Lutz image is a byte copy of a set's image) keeps its own name: RI.<uid>.<n>.dcm."""
    if not (flat / f"RI.{ds.SOPInstanceUID}.dcm").exists():
        return save_unnamed(ds, flat).name
    n = 1
    while (flat / f"RI.{ds.SOPInstanceUID}.{n}.dcm").exists():
        n += 1
    name = f"RI.{ds.SOPInstanceUID}.{n}.dcm"
    strip_names(ds).save_as(flat / name, write_like_original=False)
    return name


def _datasets(corpus: Path, key: str, entry: dict) -> list[pydicom.Dataset | None]:
    path = corpus / key
    if entry["kind"] == "directory":
        return [_read(p.read_bytes()) for p in sorted(path.iterdir())]
    if entry["kind"] == "zip":
        with zipfile.ZipFile(path) as zf:
            return [_read(zf.read(info)) for info in zf.infolist() if not info.is_dir()]
    return [_read(path.read_bytes())] if path.is_file() else []


def _read(data: bytes) -> pydicom.Dataset | None:
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        ds.pixel_array  # noqa: B018  (a damaged image is junk to leave out, not an image to route)
        return ds
    except Exception:
        return None


def vmat_acquisitions(work: Path, flat: Path) -> list[Acquisition]:
    """The project's synthetic DRGS and DRMLC pairs: each image its own row's acquisition."""
    out = []
    for test in ("drgs", "drmlc"):
        open_image, dmlc = vmat_pair(work / test, test=test)
        out.append(Acquisition(f"{test} DMLC", "vmat DMLC", [save_unnamed(pydicom.dcmread(dmlc), flat).name]))
        out.append(
            Acquisition(f"{test} open", "vmat open", [save_unnamed(pydicom.dcmread(open_image), flat).name])
        )
    return out


def tally(acquisitions: list[Acquisition], results: dict[str, ClassifiedFile]) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    for acq in acquisitions:
        row = rows.setdefault(acq.true_type, Row())
        row.acquisitions += 1
        row.images += len(acq.files)
        want = SECTIONS[acq.true_type]
        got = [results[name] for name in acq.files]
        routed = Counter(cf.analysis for cf in got if cf.analysis and cf.status is None)
        errors = [cf for cf in got if cf.status == "error"]
        if any(section != want for section in routed):
            row.wrong += 1
            row.wrong_routes.append(f"{acq.key}: {dict(routed)}")
        elif errors:
            row.error += 1
        elif routed.get(want, 0) == len(got):
            row.right += 1
        else:
            row.ignored += 1
            row.ignored_why.extend(f"{acq.key}: {cf.reason}" for cf in got if cf.analysis is None)
    return rows


def grouped(acquisitions: list[Acquisition], classified: list[ClassifiedFile], flat: Path) -> str:
    """What the product's own grouping makes of the flat folder: per true acquisition, the planned
    acquisitions its images ended in (a Winston-Lutz set split or merged shows here)."""
    settings = load_settings()
    work = plan(classified, settings, group_context(flat, settings))
    home = {name: acq for acq in work.acquisitions for name in acq.files}
    lines = ["", "After grouping (linac_qa.grouping.plan.plan over the flat folder):"]
    for true in acquisitions:
        planned = {id(home[f]): home[f] for f in true.files if f in home}.values()
        shapes = ", ".join(
            f"{p.analysis} of {len(p.files)}" + (f" ({p.variant['test']})" if "test" in p.variant else "")
            for p in planned
        )
        whole = len(planned) == 1 and sorted(next(iter(planned)).files) == sorted(true.files)
        if not whole or true.true_type.startswith(("winstonlutz", "vmat")):
            lines.append(f"- {true.key} ({true.true_type}, {len(true.files)} images): {shapes or 'none'}")
    lines.append(f"- {work.waiting} images waiting for a partner")
    return "\n".join(lines)


def table(rows: dict[str, Row], skipped: list[str], images: int, seconds: float, cpu: float) -> str:
    def cells(label: str, analysis: str, r: Row) -> list[object]:
        return [label, analysis, r.acquisitions, r.images, r.right, r.ignored, r.wrong, r.error]

    columns = ["true type (EXPECTED.json)", "analysis", "acquisitions", "images", "right", "ignored"]
    columns += ["wrong", "error"]
    body = [cells(t, SECTIONS.get(t, "(none)"), r) for t, r in rows.items()]
    epid = [r for t, r in rows.items() if not t.startswith("vmat")]
    total = Row(
        acquisitions=sum(r.acquisitions for r in epid),
        right=sum(r.right for r in epid),
        ignored=sum(r.ignored for r in epid),
        wrong=sum(r.wrong for r in epid),
        error=sum(r.error for r in epid),
        images=sum(r.images for r in epid),
    )
    body.append(cells("**corpus EPID total**", "", total))
    notes = [
        "- winstonlutz_2d: the corpus's junk entry 'misnamed_wl_image' (a WL image named like a PF), "
        "whose alternative type that is"
    ]
    notes += [f"- wrong: {w}" for r in rows.values() for w in r.wrong_routes]
    notes += [f"- ignored: {w}" for r in rows.values() for w in r.ignored_why]
    notes += [f"- left out: {s}" for s in skipped]
    notes.append(
        f"- classified {images} images in {seconds:.2f} s wall, {cpu:.2f} s CPU: "
        f"{seconds / max(images, 1) * 1000:.0f} ms wall, {cpu / max(images, 1) * 1000:.0f} ms CPU per image "
        f"(header and pixels; load average {load_average():.1f})"
    )
    return "\n".join([markdown_table(columns, body), "", *notes])


if __name__ == "__main__":
    sys.exit(main())
