"""Zips from the QA folder are untrusted: anyone with write access to the share can drop one. They
are checked from their central directory before a single member is decompressed, by
classification (which reads member headers) and again by the worker that extracts them.

Refused: members that would land outside the extraction folder (`../x`, `/etc/x`, `C:\\x`,
`\\\\server\\share\\x`), symbolic links, zip bombs (more than `max_bytes` uncompressed in total, or a
total compression ratio above `max_ratio`; DICOM images compress about 2-4 times) and archives with
more members than any QA export has.
"""

from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from linac_qa.intake.headers import PREAMBLE, looks_like_dicom

# A CBCT export is a few hundred slices; a million-entry central directory is an attack on our time.
MAX_MEMBERS = 20_000
# Extracted names keep the member's base name (pylinac shows it), shortened so no file system balks.
_NAME_LIMIT = 100
_CHUNK = 1 << 20


class ZipRefused(ValueError):
    """The archive is not extracted (nor classified): the reason says why."""


@dataclass(frozen=True)
class ZipLimits:
    max_bytes: int = 4096 << 20
    max_ratio: float = 200

    @classmethod
    def from_megabytes(cls, megabytes: float, ratio: float) -> ZipLimits:
        return cls(max_bytes=int(megabytes * (1 << 20)), max_ratio=ratio)


def file_members(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    # Not ZipInfo.is_dir(): it raises IndexError on a member without a name (found by fuzzing).
    return [i for i in zf.infolist() if not i.filename.endswith("/")]


def check_archive(members: list[zipfile.ZipInfo], limits: ZipLimits) -> None:
    """Raises ZipRefused for a bomb or any unsafe member; reads nothing but the central directory
    (whose sizes bound what zipfile will decompress: it stops at the declared size)."""
    if len(members) > MAX_MEMBERS:
        raise ZipRefused(f"zip refused: {len(members)} members (more than {MAX_MEMBERS})")
    total = sum(i.file_size for i in members)
    packed = max(sum(i.compress_size for i in members), 1)
    if total > limits.max_bytes:
        raise ZipRefused(
            f"zip refused: {_mb(total)} uncompressed, more than the limit of {_mb(limits.max_bytes)}"
            " (general.zip-max-megabytes)"
        )
    if total / packed > limits.max_ratio:
        raise ZipRefused(
            f"zip refused: compression ratio {total / packed:.0f}, above the limit of {limits.max_ratio:g}"
            " (general.zip-max-ratio): a zip bomb?"
        )
    for info in members:
        problem = unsafe_member(info)
        if problem:
            raise ZipRefused(f"zip refused: member {info.filename!r} {problem}")


def unsafe_member(info: zipfile.ZipInfo) -> str | None:
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if not parts:
        return "has no name"
    if name.startswith("/") or ".." in parts or ":" in name or "\0" in name:
        return "points outside the archive"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    return None


def safe_extract_dicoms(zip_path: Path, folder: Path, limits: ZipLimits | None = None) -> list[Path]:
    """The zip's DICOM members, extracted flat into `folder` (which the caller removes) under
    numbered names. Raises ZipRefused before writing anything when the archive is unsafe."""
    limits = limits or ZipLimits()
    out = []
    with zipfile.ZipFile(zip_path) as zf:
        members = file_members(zf)
        check_archive(members, limits)
        budget = limits.max_bytes
        for n, info in enumerate(members):
            with zf.open(info) as src:
                if not looks_like_dicom(src.read(PREAMBLE + 4)):
                    continue
            target = folder / f"{n:04d}_{_base_name(info)}"
            with zf.open(info) as src, target.open("xb") as dst:
                while chunk := src.read(_CHUNK):
                    budget -= len(chunk)
                    if budget < 0:  # belt and braces: zipfile already stops at the declared size
                        raise ZipRefused("zip refused: it unpacks to more than it declares")
                    dst.write(chunk)
            out.append(target)
    if not out:
        raise ValueError("zip holds no DICOM images")
    return out


def _base_name(info: zipfile.ZipInfo) -> str:
    return PurePosixPath(info.filename.replace("\\", "/")).name[-_NAME_LIMIT:]


def _mb(n: float) -> str:
    return f"{n / (1 << 20):.0f} MB" if n >= 1 << 20 else f"{n:.0f} bytes"
