"""Where results go and how they are written: atomically (a hidden temporary name in the same
folder, then a rename), so a crash never leaves a partial file under a final name; and never over a
previous result without keeping it in the history folder."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path, PurePosixPath

from linac_qa.model import Acquisition
from linac_qa.records.ledger import STATE_DIR

OUTPUT_EXTENSIONS = (".pdf", ".png", ".txt", ".json")
_TEMP_MARK = ".lqa-tmp-"


# Exactly what `temporary_name` makes, so that a user's file is never taken for one and deleted.
_TEMP_NAME = re.compile(r"\..*\.lqa-tmp-[0-9a-f]{8}(\.(pdf|png|txt|json))?")


def is_temporary(name: str) -> bool:
    return _TEMP_NAME.fullmatch(name) is not None


def output_paths(
    directory: Path, output_stem: str, suffix: str, output_directory: Path | None
) -> dict[str, Path]:
    """`<stem><suffix>.<ext>` next to the original, or mirrored under output-directory."""
    base = (output_directory or directory) / output_stem
    return {ext: base.parent / f"{base.name}{suffix}{ext}" for ext in OUTPUT_EXTENSIONS}


def distinct_stems(
    acquisitions: list[Acquisition], directory: Path, suffix: str, output_directory: Path | None
) -> list[Acquisition]:
    """Acquisitions whose outputs would land on each other's, or on those of another acquisition
    recorded earlier, are named after their whole file name instead: `PF.dcm` and `PF.tif`, or the
    UID-named `1.2.840.1.7` and `1.2.840.1.8` (no extension: both would be `1.2.840.1`), give
    `PF.dcm_analysis.pdf` and `PF.tif_analysis.pdf`. Case is ignored (Windows and macOS shares)."""

    def key(acq: Acquisition) -> str:
        return str(output_paths(directory, acq.output_stem, suffix, output_directory)[".json"]).casefold()

    taken = Counter(key(a) for a in acquisitions)
    out = []
    for acq in acquisitions:
        # A folder `WL_A` beside a zip `WL_A.zip`: the folder is already named by its whole name.
        whole = PurePosixPath(acq.output_stem).name == acq.name.rstrip("/")
        clash = taken[key(acq)] > 1 and not whole
        if clash or _claimed_by_another(acq, directory, suffix, output_directory):
            acq = acq.model_copy(update={"output_stem": _whole_name_stem(acq, taken, key)})
        out.append(acq)
    return out


def _whole_name_stem(acq: Acquisition, taken: Counter[str], key: Callable[[Acquisition], str]) -> str:
    stem = PurePosixPath(acq.output_stem)
    candidate = str(stem.parent / acq.name.rstrip("/"))
    n = 1
    while True:
        trial = acq.model_copy(update={"output_stem": candidate if n == 1 else f"{candidate}_{n}"})
        if taken[key(trial)] == 0:
            taken[key(trial)] += 1
            return trial.output_stem
        n += 1


def _claimed_by_another(
    acq: Acquisition, directory: Path, suffix: str, output_directory: Path | None
) -> bool:
    """An existing `.json` at this name that reports on other files: an earlier acquisition's."""
    document = output_paths(directory, acq.output_stem, suffix, output_directory)[".json"]
    try:
        ours = json.loads(document.read_text(encoding="utf-8"))["linac-qa-flows"]
    except (OSError, ValueError, KeyError, TypeError):
        return False  # nothing there, or not ours: nothing to protect
    recorded = ((ours.get("provenance") or {}).get("inputs") or {}).get("sha256")
    if isinstance(recorded, dict):
        return set(recorded) != set(acq.files)
    return ours.get("acquisition") != acq.name


@contextmanager
def staged_outputs(
    finals: Sequence[Path], before_commit: Callable[[], None] | None = None
) -> Iterator[dict[Path, Path]]:
    """A temporary path for each output; only when the block has written all of them are they
    renamed onto their final names, in the given order (put the `.json` last: a `.json` under its
    final name means the whole set is there). On any error, or a kill, no final name is touched;
    the temporaries are removed here, or by the next run's discovery after a kill."""
    for folder in {f.parent for f in finals}:
        folder.mkdir(parents=True, exist_ok=True)
    temporaries = {final: temporary_name(final) for final in finals}
    with ExitStack() as cleanup:
        for tmp in temporaries.values():
            cleanup.callback(tmp.unlink, missing_ok=True)
        yield temporaries
        for tmp in temporaries.values():
            _fsync(tmp)
        if before_commit is not None:
            before_commit()
        for final, tmp in temporaries.items():
            os.replace(tmp, final)
        for folder in {f.parent for f in finals}:
            fsync_dir(folder)


def remove_stale_temporaries(folder: Path, older_than_seconds: float) -> int:
    """Temporaries a killed run left under an output folder outside DIR (inside DIR, discovery
    finds them). Only old ones: another directory's run may share this folder and be writing."""
    removed = 0
    limit = time.time() - older_than_seconds
    for base, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = [d for d in dirnames if d != STATE_DIR]
        for name in filenames:
            path = Path(base) / name
            with suppress(OSError):
                if is_temporary(name) and path.lstat().st_mtime < limit:
                    path.unlink()
                    removed += 1
    return removed


def temporary_name(final: Path) -> Path:
    """Hidden, unique, in the same folder (so the rename is atomic), keeping the extension (which
    matplotlib and pylinac read)."""
    return final.parent / f".{final.stem}{_TEMP_MARK}{uuid.uuid4().hex[:8]}{final.suffix}"


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fp:
        os.fsync(fp.fileno())


def fsync_dir(folder: Path) -> None:
    """The renames themselves survive a power cut only once the folder is synced (POSIX; Windows
    cannot open a folder, and NTFS journals renames anyway)."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def keep_previous(paths: list[Path], directory: Path, run_stamp: str) -> None:
    """Move earlier outputs into `DIR/.linac-qa/history/<run>/` before they are replaced."""
    for path in paths:
        if not path.exists():
            continue
        try:
            rel = path.relative_to(directory)
        except ValueError:
            rel = Path(path.name)
        target = directory / STATE_DIR / "history" / run_stamp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), str(target))


def run_stamp(when: dt.datetime) -> str:
    return when.strftime("%Y%m%dT%H%M%S")


def display_path(path: Path, directory: Path) -> str:
    """Relative to the directory when inside it, else absolute (the JSON summary's contract)."""
    try:
        return path.resolve().relative_to(directory.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())
