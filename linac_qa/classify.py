"""Classification: which analysis a file belongs to, from its name, its DICOM header (never its
pixels) or its zip listing; or why it is not QA data. Never raises for a bad file: every file leaves
with a section or a status and a reason."""

from __future__ import annotations

import io
import os
import stat
import zipfile
import zlib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path, PurePosixPath

from pydicom.errors import InvalidDicomError

from linac_qa.analyses import REGISTRY
from linac_qa.config import Settings
from linac_qa.headers import PREAMBLE, looks_like_dicom, read_header
from linac_qa.keywords import best_match, normalise
from linac_qa.model import ClassifiedFile, DicomHeader, Status
from linac_qa.zipsafe import ZipLimits, ZipRefused, check_archive, file_members

IMAGE_SUFFIXES = frozenset({".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp"})
ZIP_SUFFIXES = frozenset({".zip"})
# Modalities that are never images to analyse here, named so the reason says what the file is.
NON_IMAGE_MODALITIES = {
    "RTPLAN": "a DICOM RT plan",
    "RTSTRUCT": "a DICOM RT structure set",
    "RTDOSE": "a DICOM RT dose",
    "RTRECORD": "a DICOM RT treatment record",
    "REG": "a DICOM registration",
    "SR": "a DICOM structured report",
}
# A zip member's header is parsed from at most this much of it: a member that is a bomb (or claims
# a gigabyte-long element) costs no more than this to look at.
ZIP_HEADER_BYTES = 4 << 20


def classify_files(directory: Path, paths: Iterable[str], settings: Settings) -> list[ClassifiedFile]:
    out = []
    for rel in paths:
        try:
            out.append(classify_file(directory, rel, settings))
        except Exception as exc:  # a hostile file must not take its batch down with it
            out.append(ClassifiedFile(path=rel, status=Status.ERROR, reason=f"cannot be read: {_brief(exc)}"))
    return out


def classify_file(directory: Path, rel: str, settings: Settings) -> ClassifiedFile:
    path = directory / rel
    name = PurePosixPath(rel).name
    suffix = PurePosixPath(rel).suffix.lower()
    by_name = _match(settings, [name])
    if path.is_symlink():
        return ClassifiedFile(path=rel, status=Status.IGNORED, reason=_symlink_reason(directory, path))
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):  # discovery could not list it
            return _unlisted_folder(rel, path)
        if not stat.S_ISREG(st.st_mode):  # opening a named pipe would wait forever for a writer
            return ClassifiedFile(path=rel, status=Status.IGNORED, reason=_special_file(st.st_mode))
        size = st.st_size
        if size == 0:
            return _verdict(rel, by_name, "empty file (0 bytes)")
        with path.open("rb") as fp:
            head = fp.read(PREAMBLE + 4)
            if looks_like_dicom(head):
                fp.seek(0)
                return _classify_dicom(rel, by_name, read_header(fp, size), settings)
    except PermissionError:
        return ClassifiedFile(path=rel, status=Status.ERROR, reason="permission denied: cannot be read")
    except OSError as exc:  # an I/O error on a share, a file removed since discovery
        return _verdict(rel, by_name, f"cannot be read: {_brief(exc)}", always_error=True)
    except Exception as exc:  # pydicom raises almost anything on a damaged header (found by fuzzing)
        return _verdict(rel, by_name, f"damaged DICOM header: {_brief(exc)}", always_error=True)
    for section in settings.enabled_sections():
        claim = REGISTRY[section].claims(path, head)
        if claim:
            return ClassifiedFile(path=rel, analysis=section, reason=claim)
    if suffix in ZIP_SUFFIXES or zipfile.is_zipfile(path):
        return _classify_zip(directory, rel, name, settings, by_name)
    if suffix in IMAGE_SUFFIXES:
        if by_name and REGISTRY[by_name[0]].accepts_images:
            section, keyword = by_name
            return ClassifiedFile(
                path=rel, analysis=section, keyword=keyword, reason=f"'{keyword}' in the name"
            )
        return _verdict(rel, by_name, "image file without a QA keyword in its name")
    return _verdict(rel, by_name, f"not DICOM, an image or a zip ({_describe(head)})")


def _classify_dicom(
    rel: str, by_name: tuple[str, str] | None, header: DicomHeader, settings: Settings
) -> ClassifiedFile:
    name = PurePosixPath(rel).name
    if header.modality in NON_IMAGE_MODALITIES:
        what = NON_IMAGE_MODALITIES[header.modality]
        return ClassifiedFile(path=rel, status=Status.IGNORED, reason=f"{what}, not an image", header=header)
    if not header.has_pixels:
        return _verdict(
            rel, by_name, f"DICOM {header.modality or ''} without image data".replace("  ", " "), header
        )
    if header.pixel_bytes_missing:
        return _verdict(
            rel, by_name, f"truncated: {header.pixel_bytes_missing} bytes of pixel data missing", header, True
        )
    match = _match(settings, [name, *header.texts]) or _by_modality(settings, header)
    if match is None:
        labels = ", ".join(repr(t) for t in header.texts[:2]) or "none"
        return ClassifiedFile(
            path=rel,
            status=Status.IGNORED,
            reason=f"{header.modality or 'DICOM'} image, no QA keyword in its name or labels ({labels})",
            header=header,
        )
    section, keyword = match
    where = "the name" if by_name and by_name[1] == keyword else "the DICOM labels"
    if header.modality not in REGISTRY[section].modalities:
        return _verdict(rel, match, f"{header.modality} image cannot be analysed as {section}", header, True)
    reason = f"'{keyword}' in {where}" if keyword else f"{header.modality} image, by content (no keyword)"
    if by_name and by_name[0] != section:
        reason += f" (the name says {by_name[0]}: '{by_name[1]}'; the longer keyword wins)"
    return ClassifiedFile(path=rel, analysis=section, keyword=keyword or None, reason=reason, header=header)


def _classify_zip(
    directory: Path, rel: str, name: str, settings: Settings, by_name: tuple[str, str] | None
) -> ClassifiedFile:
    general = settings.general
    limits = ZipLimits.from_megabytes(general.zip_max_megabytes, general.zip_max_ratio)
    try:
        with zipfile.ZipFile(directory / rel) as zf:
            members = file_members(zf)
            # From the central directory alone, before any member is decompressed.
            check_archive(members, limits)
            dicoms = []
            first_header = None
            for info in members:
                with zf.open(info) as fp:
                    head = fp.read(PREAMBLE + 4)
                    if not looks_like_dicom(head):
                        continue
                    dicoms.append(info.filename)
                    if first_header is None:
                        start = io.BytesIO(head + fp.read(ZIP_HEADER_BYTES))
                        first_header = read_header(start, info.file_size)
    except ZipRefused as exc:  # hostile or broken beyond use: someone should look at it
        return _verdict(rel, by_name, str(exc), always_error=True)
    except (
        zipfile.BadZipFile,
        zlib.error,
        OSError,
        RuntimeError,  # encrypted
        NotImplementedError,  # a compression method zipfile lacks
        InvalidDicomError,
        ValueError,
        EOFError,
    ) as exc:
        return _verdict(rel, by_name, f"damaged zip: {_brief(exc)}", always_error=True)
    if not dicoms:
        listed = ", ".join(i.filename for i in members[:3]) + (" ..." if len(members) > 3 else "")
        return _verdict(
            rel,
            by_name,
            f"zip holds no DICOM images ({_count(len(members), 'member')}: {listed or 'none'})",
        )
    texts = [name, *(PurePosixPath(d).name for d in dicoms), *(first_header.texts if first_header else ())]
    match = _match(settings, texts)
    if match is None:
        return ClassifiedFile(
            path=rel, status=Status.IGNORED, reason=f"zip of {len(dicoms)} DICOM files without a QA keyword"
        )
    section, keyword = match
    return ClassifiedFile(
        path=rel,
        analysis=section,
        keyword=keyword,
        reason=f"zip of {len(dicoms)} DICOM images, '{keyword}'",
        header=first_header,
        zip_members=tuple(dicoms),
    )


def _by_modality(settings: Settings, header: DicomHeader) -> tuple[str, str] | None:
    """The content step after keywords: a section that takes this modality without one."""
    for section in settings.enabled_sections():
        if header.modality in REGISTRY[section].claims_modalities:
            return section, ""
    return None


def _unlisted_folder(rel: str, path: Path) -> ClassifiedFile:
    try:
        os.listdir(path)
    except PermissionError:
        why = "permission denied"
    except OSError as exc:
        why = _brief(exc)
    else:  # readable again: the next run looks inside
        return ClassifiedFile(
            path=rel, status=Status.IGNORED, reason="folder could not be listed; retried next run"
        )
    return ClassifiedFile(
        path=rel, status=Status.ERROR, reason=f"folder cannot be listed ({why}): its files are not seen"
    )


def _special_file(mode: int) -> str:
    what = "a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return f"not a regular file ({what}): not read"


def _symlink_reason(directory: Path, path: Path) -> str:
    """Links are never followed: a target inside the directory is analysed under its own name."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return "symbolic link that is broken or loops: not followed"
    if not target.is_relative_to(directory.resolve()):
        return "symbolic link to outside the directory: not followed"
    return "symbolic link: not followed (its target is analysed under its own name)"


def _match(settings: Settings, texts: list[str]) -> tuple[str, str] | None:
    """`best_match` over the texts, one text at a time: the best candidate over several texts is the
    best of each text's best, and a text's best is remembered, so the labels that a whole CT series
    or session shares are matched once, not once per file."""
    candidates = tuple((s, k) for s in settings.enabled_sections() for k in settings.section(s).keywords)
    found = {_best_for_text(PurePosixPath(t).stem if "." in t else t, candidates) for t in texts}
    # best_match's own rule: the longest keyword, then the earliest in config order (max keeps the first).
    ranked = [c for c in candidates if c in found]
    return max(ranked, key=lambda c: len(normalise(c[1]))) if ranked else None


@lru_cache(maxsize=16384)
def _best_for_text(text: str, candidates: tuple[tuple[str, str], ...]) -> tuple[str, str] | None:
    return best_match([text], candidates)


def _verdict(
    rel: str,
    match: tuple[str, str] | None,
    why: str,
    header: DicomHeader | None = None,
    always_error: bool = False,
) -> ClassifiedFile:
    """A file that cannot be analysed: an error when something says it is QA data (a keyword, or a
    damaged DICOM), else ignored."""
    if match or always_error:
        suffix = f" (named like {match[0]}: '{match[1]}')" if match else ""
        return ClassifiedFile(
            path=rel,
            analysis=match[0] if match else None,
            status=Status.ERROR,
            reason=why + suffix,
            header=header,
        )
    return ClassifiedFile(path=rel, status=Status.IGNORED, reason=why, header=header)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _describe(head: bytes) -> str:
    if not head:
        return "empty"
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return "text" if printable / len(head) > 0.95 else "unknown binary content"


def _brief(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__
