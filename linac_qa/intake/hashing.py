"""Content hashes, for the ledger (is a touched file really changed?) and for provenance."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Hashed:
    """A file's SHA-256 and its size and mtime as it was hashed: what the ledger records together,
    so that a file changed after discovery is not taken for new (or for done) on the next run."""

    sha256: str
    size: int
    mtime_ns: int


def hash_file(path: Path) -> Hashed:
    digest = hashlib.sha256()
    with path.open("rb") as fp:
        # Before reading: a file that changes during the read is then seen as changed by the next
        # run (and hashed again), never as done with a state it did not have when analysed.
        st = os.fstat(fp.fileno())
        for chunk in iter(lambda: fp.read(1 << 20), b""):
            digest.update(chunk)
    return Hashed(digest.hexdigest(), st.st_size, st.st_mtime_ns)


def sha256_file(path: Path) -> str:
    return hash_file(path).sha256


# A group's inputs are listed one by one up to this many (a CT series of 300 slices is not).
MAX_LISTED = 50


def combined_sha256(hashes: dict[str, str]) -> str:
    """One hash for a group's inputs (file name and content), as recorded in the provenance."""
    return hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in sorted(hashes.items())).encode()).hexdigest()


def listed_hashes(hashes: dict[str, str]) -> dict[str, str]:
    """The inputs' hashes as the provenance keeps them: each file's, or for a larger group only the
    combined one (under the key `combined_sha256`)."""
    return dict(hashes) if len(hashes) <= MAX_LISTED else {"combined_sha256": combined_sha256(hashes)}
