"""Discovery: which files under the directory are new, from `stat` and the ledger alone.

A file whose path, size and mtime match the ledger is done without being opened; its content hash
is computed only when those changed, so a touched but identical file stays done.

A file whose recorded result is an `error` is offered again when something that could fix it
changed since: the linac-qa-flows or pylinac version, or the config. Re-recorded under the current
ones, a file that is merely still broken is not analysed again at every run. `--retry-errors`
offers every error again.
"""

from __future__ import annotations

import os
import stat
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from linac_qa.config import Settings
from linac_qa.history.dashboard import is_dashboard
from linac_qa.intake.hashing import sha256_file
from linac_qa.intake.keywords import any_match
from linac_qa.model import ClassifiedFile, SkipReason, Status
from linac_qa.records import versions
from linac_qa.records.ledger import STATE_DIR, FileStamp, Known, Ledger
from linac_qa.records.outputs import OUTPUT_EXTENSIONS, is_temporary
from linac_qa.review.monthly import is_monthly_report

# Names of files still being written by a copy tool or browser.
IN_PROGRESS_SUFFIXES = (".part", ".partial", ".crdownload", ".filepart", ".tmp", ".download")
BAD_NAME = "file name is not valid UTF-8 (shown with backslash escapes): not read; rename it"
BAD_FOLDER_NAME = (
    "folder name is not valid UTF-8 (shown with backslash escapes): its files are not seen; rename it"
)


@dataclass
class Discovery:
    new: list[FileStamp] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    changed_but_identical: list[FileStamp] = field(default_factory=list)
    stale_temporaries: list[Path] = field(default_factory=list)
    busy_folders: set[str] = field(default_factory=set)  # holding a file still being written
    retried: dict[str, str] = field(
        default_factory=dict
    )  # files with a recorded error offered again, and why
    # Names that are not valid UTF-8 (POSIX allows any bytes), shown with backslash escapes, each with
    # its reason: an error decided here and never opened, so that no such name reaches classification,
    # the ledger, the Prefect API or the JSON summary.
    bad_names: list[tuple[FileStamp, str]] = field(default_factory=list)

    @property
    def stamps(self) -> list[FileStamp]:
        """Every file this run looks at."""
        return [*self.new, *(stamp for stamp, _ in self.bad_names)]

    def decided(self) -> list[ClassifiedFile]:
        return [ClassifiedFile(path=s.path, status=Status.ERROR, reason=why) for s, why in self.bad_names]


def discover(
    directory: Path,
    settings: Settings,
    known: dict[str, Known],
    *,
    force: bool = False,
    retry_errors: bool = False,
    now: float | None = None,
) -> Discovery:
    now = time.time() if now is None else now
    general = settings.general
    found = Discovery()
    retry = ErrorRetry(versions.current(settings.hash), retry_errors)
    window = general.rolling_window_days * 86400
    own_suffix = general.suffix.lower()
    unlisted: list[OSError] = []
    for folder, dirnames, filenames in os.walk(directory, followlinks=False, onerror=unlisted.append):
        base = Path(folder)
        hidden_dirs = [d for d in dirnames if d.startswith(".")]
        for d in hidden_dirs:
            dirnames.remove(d)
            if d != STATE_DIR:
                found.skipped[SkipReason.HIDDEN] += 1
        # A linked folder is never entered (it may point outside DIR, or loop); it is looked at like
        # a file, so that classification reports it as ignored, with the reason.
        linked = [d for d in dirnames if (base / d).is_symlink()]
        for d in linked:
            dirnames.remove(d)
        # A folder with its own state is processed by runs of its own (perhaps right now).
        for d in [d for d in dirnames if _has_own_state(base / d)]:
            dirnames.remove(d)
            found.skipped[SkipReason.NESTED_RUN] += 1
        # A folder whose name is not UTF-8 is one error, not one per file in it.
        for d in [d for d in dirnames if printable(d) != d]:
            dirnames.remove(d)
            _refuse_name(found, directory, base / d, known, force, BAD_FOLDER_NAME)
        dirnames.sort()
        for name in sorted([*filenames, *linked]):
            path = base / name
            rel = path.relative_to(directory).as_posix()
            if is_temporary(name):
                found.stale_temporaries.append(path)
                continue
            reason = _skip_by_name(name, own_suffix, general.avoid_keywords)
            if reason:
                found.skipped[reason] += 1
                if reason is SkipReason.UNSETTLED:
                    found.busy_folders.add(_folder(directory, base))
                continue
            try:
                st: os.stat_result | None = path.lstat()
            except OSError:
                st = None  # classification reports why it cannot be read
            if st is not None and window and now - st.st_mtime > window:
                found.skipped[SkipReason.WINDOW] += 1
                continue
            if st is not None and now - st.st_mtime < general.settle_seconds:
                found.skipped[SkipReason.UNSETTLED] += 1
                found.busy_folders.add(_folder(directory, base))
                continue
            if printable(name) != name:
                _refuse_name(found, directory, path, known, force, BAD_NAME)
                continue
            if st is None:
                found.new.append(FileStamp(rel, 0, 0))
                continue
            stamp = FileStamp(rel, st.st_size, st.st_mtime_ns)
            prior = known.get(rel)
            if prior is not None and not force and not retry.offers(found, rel, prior):
                if (prior.size, prior.mtime_ns) == (st.st_size, st.st_mtime_ns):
                    found.skipped[SkipReason.DONE] += 1
                    continue
                if (
                    prior.size == st.st_size
                    and prior.sha256
                    and stat.S_ISREG(st.st_mode)  # a named pipe would block the read
                    and prior.sha256 == sha256_file(path)
                ):
                    found.skipped[SkipReason.DONE] += 1
                    found.changed_but_identical.append(stamp)
                    continue
            found.new.append(stamp)
    for exc in unlisted:
        _unlisted_folder(found, directory, exc, known, force, retry)
    return found


@dataclass(frozen=True)
class ErrorRetry:
    now: versions.Provenance
    every_error: bool  # --retry-errors

    def offers(self, found: Discovery, rel: str, prior: Known) -> bool:
        """True when the file's recorded error is to be retried (noted in `found.retried`)."""
        if prior.status != "error":
            return False
        if self.every_error:
            found.retried[rel] = "--retry-errors"
            return True
        # A ledger older than the provenance columns recorded none: what wrote it was older.
        changes = self.now.changes_since(prior.provenance or versions.Provenance(None, None, None))
        if changes:
            found.retried[rel] = ", ".join(changes)
        return bool(changes)


def _unlisted_folder(
    found: Discovery, directory: Path, exc: OSError, known: dict[str, Known], force: bool, retry: ErrorRetry
) -> None:
    """A folder that cannot be listed (permissions, a share's I/O error) hides files: it becomes a
    result of its own (classification says why), never a silent gap. DIR itself: the run fails."""
    path = Path(exc.filename) if exc.filename else directory
    if path == directory:
        raise exc
    rel = path.relative_to(directory).as_posix()
    stamp = _stamp(path, rel)
    prior = known.get(rel)
    if (
        prior is not None
        and not force
        and (prior.size, prior.mtime_ns) == (stamp.size, stamp.mtime_ns)
        and not retry.offers(found, rel, prior)
    ):
        found.skipped[SkipReason.DONE] += 1
    else:
        found.new.append(stamp)


def _stamp(path: Path, rel: str) -> FileStamp:
    """Its size and mtime now, or zeros when it cannot even be looked at."""
    try:
        st = path.lstat()
    except OSError:
        return FileStamp(rel, 0, 0)
    return FileStamp(rel, st.st_size, st.st_mtime_ns)


def _refuse_name(
    found: Discovery, directory: Path, path: Path, known: dict[str, Known], force: bool, why: str
) -> None:
    """A name that is not UTF-8: an error under its printable name, once (until it changes)."""
    rel = printable(path.relative_to(directory).as_posix())
    stamp = _stamp(path, rel)
    prior = known.get(rel)
    if prior is not None and not force and (prior.size, prior.mtime_ns) == (stamp.size, stamp.mtime_ns):
        found.skipped[SkipReason.DONE] += 1
    else:
        found.bad_names.append((stamp, why))


def printable(name: str) -> str:
    """`name` itself when it is valid UTF-8; else the bytes it was decoded from, with backslash
    escapes for those that are not UTF-8 (b"PF\\xff.dcm" -> "PF\\xff.dcm")."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        pass
    try:
        raw = name.encode("utf-8", "surrogateescape")  # the bytes os.walk decoded (POSIX)
    except UnicodeEncodeError:  # a lone UTF-16 surrogate (Windows): escaped as itself
        return name.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def _has_own_state(folder: Path) -> bool:
    state = folder / STATE_DIR
    return state.is_dir() and not state.is_symlink()


def _folder(directory: Path, folder: Path) -> str:
    return folder.relative_to(directory).as_posix()


def _skip_by_name(name: str, own_suffix: str, avoid: list[str]) -> SkipReason | None:
    lower = name.lower()
    if name.startswith(".") or name in ("Thumbs.db", "desktop.ini"):
        return SkipReason.HIDDEN
    stem, ext = os.path.splitext(lower)
    if (
        (ext in OUTPUT_EXTENSIONS and stem.endswith(own_suffix))
        or is_dashboard(name)
        or is_monthly_report(name)
    ):
        return SkipReason.OWN_OUTPUT
    if lower.endswith(IN_PROGRESS_SUFFIXES):
        return SkipReason.UNSETTLED
    if avoid and any_match(avoid, [name]):
        return SkipReason.AVOID_KEYWORDS
    return None


def mark_identical_done(ledger: Ledger, found: Discovery) -> None:
    for stamp in found.changed_but_identical:
        ledger.touch(stamp)
