"""Where results go and how they are written: atomically (a hidden temporary name in the same
folder, then a rename), so a crash never leaves a partial file under a final name; and never over a
previous result without keeping it in the history folder."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from linac_qa.ledger import STATE_DIR

OUTPUT_EXTENSIONS = (".pdf", ".png", ".txt", ".json")
_TEMP_MARK = ".lqa-tmp-"


def is_temporary(name: str) -> bool:
    return name.startswith(".") and _TEMP_MARK in name


def output_paths(
    directory: Path, output_stem: str, suffix: str, output_directory: Path | None
) -> dict[str, Path]:
    """`<stem><suffix>.<ext>` next to the original, or mirrored under output-directory."""
    base = (output_directory or directory) / output_stem
    return {ext: base.parent / f"{base.name}{suffix}{ext}" for ext in OUTPUT_EXTENSIONS}


@contextmanager
def atomic_target(final: Path) -> Iterator[Path]:
    """A temporary path to write to (keeping the extension, which matplotlib reads), renamed onto
    `final` only when the block succeeds; removed otherwise."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.stem}{_TEMP_MARK}{uuid.uuid4().hex[:8]}{final.suffix}"
    try:
        yield tmp
        with open(tmp, "rb+") as fp:
            os.fsync(fp.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(final: Path, text: str) -> None:
    with atomic_target(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


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
