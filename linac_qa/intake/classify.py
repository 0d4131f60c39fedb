"""Classification: which analysis a file belongs to, from its name, its DICOM header or its zip
listing (pixels only for an RT image that nothing names: `linac_qa.intake.recognise`); or why it is not QA
data. Never raises for a bad file: every file leaves with a section or a status and a reason."""

from __future__ import annotations

import io
import os
import stat
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from pydicom.errors import InvalidDicomError

from linac_qa.analyses import REGISTRY
from linac_qa.config import Settings
from linac_qa.intake.headers import PREAMBLE, looks_like_dicom, read_header
from linac_qa.intake.recognise import recognise
from linac_qa.intake.routing import IGNORE, Route, by_keywords, first_rule
from linac_qa.intake.zipsafe import ZipLimits, ZipRefused, check_archive, file_members
from linac_qa.model import ClassifiedFile, DicomHeader, Status

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
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
# A zip member's header is parsed from at most this much of it: a member that is a bomb (or claims
# a gigabyte-long element) costs no more than this to look at.
ZIP_HEADER_BYTES = 4 << 20


# One classification task run per batch: a 300-slice CT series costs one task run, not 300.
CLASSIFY_BATCH = 200


def in_batches(paths: list[str], size: int = CLASSIFY_BATCH) -> list[list[str]]:
    return [paths[i : i + size] for i in range(0, len(paths), size)]


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
    suffix = PurePosixPath(rel).suffix.lower()
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
            return _verdict(rel, route(settings, rel, None), "empty file (0 bytes)")
        with path.open("rb") as fp:
            head = fp.read(PREAMBLE + 4)
            if looks_like_dicom(head):
                fp.seek(0)
                header = read_header(fp, size, settings.rule_attributes)
                return _classify_dicom(path, rel, header, settings)
    except PermissionError:
        return ClassifiedFile(path=rel, status=Status.ERROR, reason="permission denied: cannot be read")
    except OSError as exc:  # an I/O error on a share, a file removed since discovery
        return _verdict(rel, route(settings, rel, None), f"cannot be read: {_brief(exc)}", always_error=True)
    except Exception as exc:  # pydicom raises almost anything on a damaged header (found by fuzzing)
        why = f"damaged DICOM header: {_brief(exc)}"
        return _verdict(rel, route(settings, rel, None), why, always_error=True)
    for section in settings.enabled_sections():
        claim = REGISTRY[section].claims(path, head)
        if claim:
            return ClassifiedFile(path=rel, analysis=section, reason=claim.reason, variant=claim.variant)
    by_name = route(settings, rel, None)  # what its name and folders say, for a file that is not DICOM
    if suffix in ZIP_SUFFIXES or zipfile.is_zipfile(path):
        return _classify_zip(directory, rel, settings, by_name)
    if by_name is not None and by_name.section == IGNORE:
        return ClassifiedFile(path=rel, status=Status.IGNORED, reason=f"not QA data by {by_name.where}")
    if suffix in IMAGE_SUFFIXES:
        if by_name and REGISTRY[by_name.section].accepts_images:
            return _routed(rel, by_name)
        return _verdict(rel, by_name, "image file without a QA keyword in its name")
    return _verdict(rel, by_name, f"not DICOM, an image or a zip ({_describe(head)})")


def route(
    settings: Settings, rel: str, header: DicomHeader | None, labels: tuple[str, ...] = ()
) -> Route | None:
    """A routing rule, else a keyword (`linac_qa.intake.routing`); None when nothing names the test."""
    return first_rule(settings.routing, rel, header) or by_keywords(
        settings.keyword_candidates, rel, header, labels=labels
    )


def _routed(
    rel: str,
    found: Route,
    header: DicomHeader | None = None,
    *,
    reason: str | None = None,
    zip_members: tuple[str, ...] = (),
) -> ClassifiedFile:
    return ClassifiedFile(
        path=rel,
        analysis=found.section,
        keyword=found.keyword,
        reason=reason or found.reason,
        header=header,
        variant=dict(found.variant),
        zip_members=zip_members,
    )


def _classify_dicom(path: Path, rel: str, header: DicomHeader, settings: Settings) -> ClassifiedFile:
    found = route(settings, rel, header)
    if found is not None and found.section == IGNORE:
        return ClassifiedFile(
            path=rel, status=Status.IGNORED, reason=f"not QA data by {found.where}", header=header
        )
    if header.modality in NON_IMAGE_MODALITIES or header.sop_class_uid == MEDIA_STORAGE_DIRECTORY:
        what = NON_IMAGE_MODALITIES.get(header.modality or "", "a DICOMDIR (the index of an export)")
        return ClassifiedFile(path=rel, status=Status.IGNORED, reason=f"{what}, not an image", header=header)
    if header.pixel_bytes_missing:
        return _verdict(
            rel, found, f"truncated: {header.pixel_bytes_missing} bytes of pixel data missing", header, True
        )
    if not header.has_pixels:  # no image size either: a key object, a presentation state...
        why = f"DICOM {header.modality or ''} without image data: not an image".replace("  ", " ")
        return ClassifiedFile(path=rel, status=Status.IGNORED, reason=why, header=header)
    found = found or _by_modality(settings, header)
    if found is None and header.modality == "RTIMAGE" and settings.general.recognise_by_content:
        return _by_content(path, rel, header, settings)
    if found is None:
        labels = ", ".join(repr(t.splitlines()[0][:40]) for t in header.texts[:2]) or "none"
        return ClassifiedFile(
            path=rel,
            status=Status.IGNORED,
            reason=f"{header.modality or 'DICOM'} image, no QA keyword in its name, labels, folders "
            f"or patient ({labels})",
            header=header,
            by_content=True,
        )
    if header.modality not in REGISTRY[found.section].modalities:
        return _verdict(
            rel, found, f"{header.modality} image cannot be analysed as {found.section}", header, True
        )
    return _routed(rel, found, header)


def _classify_zip(directory: Path, rel: str, settings: Settings, by_name: Route | None) -> ClassifiedFile:
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
                        first_header = read_header(start, info.file_size, settings.rule_attributes)
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
    found = route(settings, rel, first_header, labels=tuple(PurePosixPath(d).name for d in dicoms))
    if found is None or found.section == IGNORE:
        why = f"by {found.where}" if found else "without a QA keyword"
        return ClassifiedFile(
            path=rel, status=Status.IGNORED, reason=f"zip of {len(dicoms)} DICOM files {why}"
        )
    return _routed(
        rel,
        found,
        first_header,
        reason=f"zip of {len(dicoms)} DICOM images, {found.reason}",
        zip_members=tuple(dicoms),
    )


def _by_content(path: Path, rel: str, header: DicomHeader, settings: Settings) -> ClassifiedFile:
    """An RT image that nothing names: what its pixels show. Only a clear answer routes it."""
    seen = recognise(path)
    if seen.kind is None:
        reason = f"RT image not recognised: {seen.detail}"
    elif seen.section not in settings.enabled_sections():
        reason = f"RT image recognised by content ({seen.detail}), but {seen.section} is disabled"
    else:
        return ClassifiedFile(
            path=rel,
            analysis=seen.section,
            reason=f"recognised by content: {seen.detail}",
            header=header,
            variant=dict(seen.variant),
            by_content=True,
        )
    return ClassifiedFile(path=rel, status=Status.IGNORED, reason=reason, header=header, by_content=True)


def _by_modality(settings: Settings, header: DicomHeader) -> Route | None:
    """The content step after keywords: a section that takes this modality without one."""
    for section in settings.enabled_sections():
        if header.modality in REGISTRY[section].claims_modalities:
            return Route(section, None, f"{header.modality} image, by content (no keyword)")
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


def _verdict(
    rel: str,
    found: Route | None,
    why: str,
    header: DicomHeader | None = None,
    always_error: bool = False,
) -> ClassifiedFile:
    """A file that cannot be analysed: an error when something says it is QA data (a rule, a
    keyword, or a damaged DICOM), else ignored."""
    named = found is not None and found.section != IGNORE
    if named or always_error:
        suffix = f" (named like {found.section}: {found.reason})" if found is not None and named else ""
        return ClassifiedFile(
            path=rel,
            analysis=found.section if found is not None and named else None,
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
