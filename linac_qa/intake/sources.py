"""Copying new files from `general.sources` (a TrueBeam's TDS trajectory-log folder, a Clinac's
dynalog folder, an EPID export) into the directory, before each discovery.

A source belongs to the linac: it is only ever read. Each file is copied once, when it has settled,
to `DIR/<source folder name>/<its path in the source>`, through a hidden temporary name that
discovery removes if a copy is interrupted; the copy is renamed into place only after its size and
SHA-256 match what was read from the source. The ledger remembers what was copied (source, path,
size, mtime, hash: `SourceCopies`, its `copies` table), so a source of thousands of logs costs a
`stat` per file on later runs. A source that is missing or unreadable is a warning of the run, never
a failure.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from linac_qa.config import Settings
from linac_qa.intake.discovery import IN_PROGRESS_SUFFIXES, printable
from linac_qa.intake.hashing import sha256_file
from linac_qa.records.ledger import FileStamp, Known, Ledger, now_text
from linac_qa.records.outputs import temporary_name


@dataclass(frozen=True)
class Candidate:
    source: Path
    stamp: FileStamp  # path relative to the source
    destination: Path


@dataclass
class SourceScan:
    ready: list[Candidate] = field(default_factory=list)
    unsettled: int = 0  # still being written: copied by a later run
    busy_folders: set[str] = field(default_factory=set)  # where those go, relative to the directory
    warnings: list[str] = field(default_factory=list)


@dataclass
class SourceCopy:
    copied: list[str] = field(default_factory=list)  # relative to the directory
    warnings: list[str] = field(default_factory=list)


class SourceChanged(Exception):
    """The source file changed while it was read: it is not settled after all."""


class SourceCopies:
    """What the ledger remembers of the files copied from each source, on its connection. A
    source is keyed as configured, its files by their path in it (POSIX separators)."""

    def __init__(self, ledger: Ledger):
        self._ledger = ledger

    def copied(self, source: str) -> dict[str, Known]:
        rows = self._ledger.query(
            "SELECT path, size, mtime_ns, sha256 FROM copies WHERE source = ?", (source,)
        )
        return {p: Known(s, m, h) for p, s, m, h in rows}

    def record(self, source: str, stamp: FileStamp, copy: str) -> None:
        """`copy`: where it went, relative to the directory."""
        with self._ledger.transaction() as db:
            db.execute(
                "INSERT INTO copies (source, path, size, mtime_ns, sha256, copy, copied)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(source, path) DO UPDATE SET"
                " size = excluded.size, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256,"
                " copy = excluded.copy, copied = excluded.copied",
                (source, stamp.path, stamp.size, stamp.mtime_ns, stamp.sha256, copy, now_text()),
            )


def scan_sources(directory: Path, settings: Settings, ledger: Ledger, now: float | None = None) -> SourceScan:
    """What `copy_from_sources` would copy now, from `stat` and the ledger alone."""
    now = time.time() if now is None else now
    scan = SourceScan()
    copies = SourceCopies(ledger)
    for source in settings.general.sources:
        problem = _unusable(source, directory)
        if problem:
            scan.warnings.append(problem)
            continue
        done = copies.copied(str(source))
        for folder, dirnames, filenames in os.walk(
            source, onerror=lambda e: scan.warnings.append(_unlisted(e))
        ):
            base = Path(folder)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not (base / d).is_symlink())
            for name in sorted(filenames):
                if name.startswith(".") or name.lower().endswith(IN_PROGRESS_SUFFIXES):
                    continue
                path = base / name
                try:
                    st = path.lstat()
                except OSError as exc:
                    scan.warnings.append(f"source file {path} cannot be read: {exc.strerror}")
                    continue
                if not stat.S_ISREG(st.st_mode):  # links, pipes, devices: never copied
                    continue
                rel = path.relative_to(source).as_posix()
                if now - st.st_mtime < settings.general.settle_seconds:
                    scan.unsettled += 1
                    scan.busy_folders.add((Path(source.name) / rel).parent.as_posix())
                    continue
                prior = done.get(printable(rel))
                if prior is not None and (prior.size, prior.mtime_ns) == (st.st_size, st.st_mtime_ns):
                    continue
                destination = directory / source.name / rel
                scan.ready.append(Candidate(source, FileStamp(rel, st.st_size, st.st_mtime_ns), destination))
    scan.warnings = [printable(w) for w in scan.warnings]  # they name files: they go to the JSON
    return scan


def copy_from_sources(
    directory: Path, settings: Settings, ledger: Ledger, now: float | None = None
) -> SourceCopy:
    """Copies every settled new source file. Runs under the directory's lock."""
    scan = scan_sources(directory, settings, ledger, now)
    copies = SourceCopies(ledger)
    result = SourceCopy(warnings=list(scan.warnings))
    for candidate in scan.ready:
        try:
            copied = _copy_one(candidate, directory, copies)
        except SourceChanged:
            continue  # still being written after all: the next run copies it
        except OSError as exc:
            result.warnings.append(
                f"could not copy {candidate.source / candidate.stamp.path}: {exc.strerror or exc}"
            )
            continue
        if copied is None:
            continue
        result.copied.append(copied)
        if directory / copied != candidate.destination:
            result.warnings.append(
                f"{candidate.source / candidate.stamp.path}: a different {candidate.destination.name} is "
                f"already in {candidate.destination.parent} (the source file changed after it was "
                f"copied?); the new version is copied as {copied}"
            )
    result.warnings = [printable(w) for w in result.warnings]
    return result


def _copy_one(candidate: Candidate, directory: Path, copies: SourceCopies) -> str | None:
    source_file = candidate.source / candidate.stamp.path
    destination = candidate.destination
    if destination.exists() or destination.is_symlink():
        # Already here: copied by an earlier run whose ledger row was lost, or put here by hand.
        if (
            destination.is_file()
            and not destination.is_symlink()
            and destination.stat().st_size == candidate.stamp.size
        ):
            sha = sha256_file(source_file)
            if sha256_file(destination) == sha:
                _record(copies, candidate, sha, destination, directory)
                return None
        # A different file of the same name is never overwritten: it may be a QA record already.
        destination = _free_name(destination)
    sha = _verified_copy(source_file, destination, candidate.stamp)
    _record(copies, candidate, sha, destination, directory)
    return destination.relative_to(directory).as_posix()


def _verified_copy(source_file: Path, destination: Path, stamp: FileStamp) -> str:
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(destination)  # hidden; discovery removes it if this copy is interrupted
    try:
        digest = hashlib.sha256()
        with source_file.open("rb") as src, tmp.open("xb") as out:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        after = source_file.stat()
        if (after.st_size, after.st_mtime_ns) != (stamp.size, stamp.mtime_ns):
            raise SourceChanged(source_file)
        sha = digest.hexdigest()
        if tmp.stat().st_size != stamp.size or sha256_file(tmp) != sha:
            raise OSError(f"the copy of {source_file} does not match the original (size or SHA-256)")
        # The acquisition's own time, so that rolling-window-days counts from it, not from the copy.
        os.utime(tmp, ns=(after.st_atime_ns, after.st_mtime_ns))
        os.replace(tmp, destination)
        return sha
    finally:
        tmp.unlink(missing_ok=True)


def _record(copies: SourceCopies, candidate: Candidate, sha: str, destination: Path, directory: Path) -> None:
    # Under printable names, as discovery records the copy: a name that is not UTF-8 is still copied
    # (discovery then reports it as an error).
    stamp = FileStamp(printable(candidate.stamp.path), candidate.stamp.size, candidate.stamp.mtime_ns, sha)
    copies.record(str(candidate.source), stamp, printable(destination.relative_to(directory).as_posix()))


def _free_name(destination: Path) -> Path:
    for n in range(2, 10_000):
        candidate = destination.with_name(f"{destination.stem}_copy{n}{destination.suffix}")
        if not candidate.exists() and not candidate.is_symlink():
            return candidate
    raise OSError(f"no free name for another copy of {destination.name}")


# At 02:00 the usual reason is a network share that is not mounted (yet): say so.
NOT_FOUND = "not found (network share not mounted?)"


def folder_problem(path: Path) -> str | None:
    """Why `path` cannot be used as a folder, worded for a person; None when it can."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "is a broken symbolic link" if path.is_symlink() else NOT_FOUND
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link that loops (it leads back to itself)"
        return f"cannot be read: {exc.strerror}"
    return None if stat.S_ISDIR(st.st_mode) else "is not a folder"


def _unusable(source: Path, directory: Path) -> str | None:
    problem = folder_problem(source)
    if problem:
        return f"source {source} {problem}; nothing copied from it"
    try:
        resolved = source.resolve()
    except OSError as exc:
        return f"source {source} cannot be read: {exc.strerror}; nothing copied from it"
    if resolved == directory or directory in resolved.parents or resolved in directory.parents:
        return f"source {source} overlaps the directory {directory}; nothing copied from it"
    if not os.access(source, os.R_OK | os.X_OK):
        return f"source {source} cannot be read (permission denied); nothing copied from it"
    return None


def _unlisted(exc: OSError) -> str:
    return f"source folder {exc.filename} cannot be listed: {exc.strerror}; its files were not copied"
