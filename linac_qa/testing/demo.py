"""Write a small synthetic nightly drop to try the tool on: `python -m linac_qa.testing.demo DIR [--force]`.

One morning of TrueBeam1 machine QA: picket fences (one passing, one with a sticking leaf), a
Winston-Lutz folder that passes and a zipped session that fails, a starshot, 6X and 6FFF open
fields, an FC-2 light/radiation image, and two files that are not QA (a photo and an RT plan).
Only data files are written, with modification times in the past, so a run that waits for files
to settle analyses them at once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from linac_qa.testing import synthetic

MACHINE = "TrueBeam1"
SETTLED_AGE_S = 300  # well beyond the default settle-seconds (30)


def write_demo(
    directory: Path,
    *,
    when: dt.datetime = synthetic.DEFAULT_WHEN,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write the demo drop into `directory` (created if needed; same-named files are replaced).

    Returns every file written. `when` is the morning's start; `log` gets one line per acquisition
    saying what it is and what the tool should make of it.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    day = when.strftime("%Y%m%d")
    written: list[Path] = []

    def at(minutes: int) -> dt.datetime:
        return when + dt.timedelta(minutes=minutes)

    def done(paths: Path | list[Path], note: str) -> None:
        paths = [paths] if isinstance(paths, Path) else paths
        written.extend(paths)
        if log is not None:
            top = d / paths[0].relative_to(d).parts[0]
            shown = f"{top.name}/ ({len(paths)} images)" if top.is_dir() else top.name
            log(f"  {shown:<52} {note}")

    pf = f"RI.QA.PF_{MACHINE}_{day}"
    done(synthetic.picket_fence(d / f"{pf}_A.dcm", when=at(5)), "picket fence: passed")
    done(
        synthetic.picket_fence(d / f"{pf}_B.dcm", leaf_error_mm=1.2, when=at(8)),
        "picket fence, one leaf 1.2 mm off: failed",
    )
    done(
        synthetic.winston_lutz_set(
            d / f"WL_{MACHINE}_{day}_A",
            synthetic.WinstonLutzSession(offset_mm=(0.2, -0.1, 0.15), when=at(30)),
        ),
        "Winston-Lutz, BB 0.3 mm from isocentre: passed",
    )
    done(
        synthetic.winston_lutz_zip(
            d / f"WL_{MACHINE}_{day}_B.zip",
            synthetic.WinstonLutzSession(offset_mm=(1.5, 0.5, 0.3), when=at(45)),
        ),
        "Winston-Lutz zip, BB 1.6 mm from isocentre: failed",
    )
    done(
        synthetic.starshot(d / f"RI.QA.Starshot_{MACHINE}_{day}_A.dcm", when=at(60)),
        "starshot, wobble 0.2 mm: passed",
    )
    done(
        synthetic.open_field(d / f"RI.QA.OpenField_6X_{MACHINE}_{day}_A.dcm", when=at(70)),
        "open field 6X: passed",
    )
    done(
        synthetic.open_field(d / f"RI.QA.OpenField_6FFF_{MACHINE}_{day}_A.dcm", fff=True, when=at(72)),
        "open field 6FFF: passed (flatness not judged)",
    )
    done(
        synthetic.light_rad(
            d / f"RI.QA.LightRad_FC2_{MACHINE}_{day}_10x10.dcm", offset_mm=(0.4, -0.3), when=at(80)
        ),
        "light/radiation FC-2 10x10: passed",
    )
    done(synthetic.png_image(d / "team photo.png"), "a photo, not QA: ignored")
    done(synthetic.rt_plan(d / "RP.QA.plan_export.dcm"), "an RT plan, not QA: ignored")

    settled = time.time() - SETTLED_AGE_S
    for path in {*written, *(p.parent for p in written if p.parent != d)}:
        os.utime(path, (settled, settled))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m linac_qa.testing.demo",
        description=(__doc__ or "").split("\n\n")[0],
        epilog="exit status: 0 written; 2 bad usage (DIRECTORY is a file, or not empty without --force)"
        "\n\nexample:\n  linac-qa demo demo && linac-qa process demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("directory", type=Path, help="where to write the demo files")
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty DIRECTORY (same-named files are replaced, others left alone)",
    )
    args = parser.parse_args(argv)
    directory: Path = args.directory
    if directory.exists() and not directory.is_dir():
        parser.error(f"{directory} is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not args.force:
        parser.error(f"{directory} is not empty (use --force to write into it anyway)")
    started = time.perf_counter()
    print(f"writing a synthetic {MACHINE} QA drop to {directory}:", file=sys.stderr)
    written = write_demo(directory, log=lambda line: print(line, file=sys.stderr))
    megabytes = sum(p.stat().st_size for p in written) / 1e6
    print(
        f"{len(written)} files, {megabytes:.1f} MB, in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
