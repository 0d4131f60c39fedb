"""Fuzzing classification (issue 8): random bytes, truncated DICOMs, DICOMs with mutated header
bytes and zips with random members, 2,300 examples in all. Every file must leave classification
with exactly one verdict (a section to analyse, or a status and a reason), no exception may escape,
and grouping must take whatever classification produced.

Reproducible in CI: `derandomize=True` draws the same examples every run, and no example database
is written.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linac_qa.config import Settings, load_settings
from linac_qa.grouping.plan import group_context, plan
from linac_qa.intake.classify import classify_file, classify_files
from linac_qa.model import ClassifiedFile, Status
from linac_qa.testing import synthetic

# Names with and without QA keywords, spaces, non-ASCII and no extension: the keyword decides
# between `error` and `ignored`, so both paths are fuzzed.
NAMES = ["RI.QA.PF_fuzz.dcm", "CT slice Ω.dcm", "1.2.840.99.7", "WL_fuzz.zip", "notes"]
CONFIG = load_settings(text="general:\n  settle-seconds: 0\n")


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def corpus() -> Iterator[dict[str, object]]:
    """Valid seeds, made once: a small RT image with a real EPID header, a CT slice, a zip of them;
    and the one folder every example writes into (overwriting)."""
    work = Path(tempfile.mkdtemp(prefix="lqa-fuzz-"))
    seeds = work / "seeds"
    starshot = synthetic.starshot(seeds / "RI.QA.Starshot_seed.dcm")
    ds = pydicom.dcmread(starshot)
    ds.Rows, ds.Columns = 16, 16  # the header is what classification reads; keep the pixels small
    ds.PixelData = bytes(16 * 16 * ds.BitsAllocated // 8)
    small = io.BytesIO()
    ds.save_as(small, write_like_original=False)
    ct = synthetic.ct_slice(seeds / "CT_seed.dcm").read_bytes()
    folder = work / "qa"
    folder.mkdir()
    try:
        yield {"dicoms": [small.getvalue(), ct], "folder": folder}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check(folder: Path, files: dict[str, bytes], config: Settings = CONFIG) -> list[ClassifiedFile]:
    for old in folder.iterdir():
        old.unlink()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    names = list(files)
    out = classify_files(folder, names, config)  # must not raise
    assert [cf.path for cf in out] == names  # exactly one verdict per file, in order
    # Not thanks to the batch's last-resort handler: each file's own classification copes.
    assert out == [classify_file(folder, name, config) for name in names]
    for cf in out:
        if cf.status is None:
            assert cf.analysis is not None, cf  # to analyse, as something
        else:
            assert cf.status in Status and cf.reason, cf  # decided, with a reason
    plan(out, config, group_context(folder, config))  # grouping takes whatever came out
    return out


def dicom_index(data: st.DataObject) -> int:
    return data.draw(st.integers(0, 1), label="seed")


@given(payload=st.binary(max_size=4096), name=st.sampled_from(NAMES))
@fuzz_settings(500)
def test_random_bytes(corpus: dict[str, object], payload: bytes, name: str) -> None:
    check(corpus["folder"], {name: payload})  # type: ignore[arg-type]


@given(payload=st.binary(min_size=4, max_size=2048), name=st.sampled_from(NAMES))
@fuzz_settings(300)
def test_random_bytes_behind_a_dicom_preamble(corpus: dict[str, object], payload: bytes, name: str) -> None:
    """Past the `DICM` marker, so the DICOM parser itself is fed garbage."""
    check(corpus["folder"], {name: bytes(128) + b"DICM" + payload})  # type: ignore[arg-type]


@given(data=st.data(), name=st.sampled_from(NAMES))
@fuzz_settings(400)
def test_truncated_dicoms(corpus: dict[str, object], data: st.DataObject, name: str) -> None:
    seed = corpus["dicoms"][dicom_index(data)]  # type: ignore[index]
    cut = data.draw(st.integers(0, len(seed)), label="cut")
    check(corpus["folder"], {name: seed[:cut]})  # type: ignore[arg-type]


@given(data=st.data(), name=st.sampled_from(NAMES))
@fuzz_settings(700)
def test_dicoms_with_mutated_headers(corpus: dict[str, object], data: st.DataObject, name: str) -> None:
    """Bytes flipped, replaced, inserted or deleted in the first 2 KB after the preamble: lengths,
    VRs, tags and values that lie."""
    mutated = bytearray(corpus["dicoms"][dicom_index(data)])  # type: ignore[index]
    for _ in range(data.draw(st.integers(1, 8), label="mutations")):
        at = data.draw(st.integers(132, min(len(mutated) - 1, 132 + 2048)), label="at")
        how = data.draw(st.sampled_from(["flip", "replace", "insert", "delete", "length"]), label="how")
        if how == "flip":
            mutated[at] ^= 1 << data.draw(st.integers(0, 7))
        elif how == "replace":
            mutated[at] = data.draw(st.integers(0, 255))
        elif how == "insert":
            mutated[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif how == "delete":
            del mutated[at : at + data.draw(st.integers(1, 8))]
        else:  # a 4-byte length that claims gigabytes, or nothing
            mutated[at : at + 4] = data.draw(
                st.sampled_from([b"\xff\xff\xff\xff", b"\xf0\xff\xff\x7f", bytes(4)])
            )
    check(corpus["folder"], {name: bytes(mutated)})  # type: ignore[arg-type]


MEMBER_NAMES = st.one_of(
    st.text(min_size=1, max_size=40),
    st.sampled_from(["../x.dcm", "/abs.dcm", "C:\\x.dcm", "a/b/WL_G0.dcm", "dir/", "WL G90 ü.dcm"]),
)


@given(data=st.data())
@fuzz_settings(400)
def test_zips_with_random_members(corpus: dict[str, object], data: st.DataObject) -> None:
    """Members of random bytes, whole and truncated DICOMs under hostile and ordinary names; some
    archives then damaged. Bombs, escapes and damage must all end as a verdict."""
    seeds = corpus["dicoms"]
    buffer = io.BytesIO()
    method = data.draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]), label="method")
    with zipfile.ZipFile(buffer, "w", method) as zf:
        for _ in range(data.draw(st.integers(0, 5), label="members")):
            kind = data.draw(st.sampled_from(["random", "dicom", "truncated", "zeros"]), label="kind")
            if kind == "random":
                body = data.draw(st.binary(max_size=512))
            elif kind == "zeros":  # compresses a thousand times: refused by ratio when deflated
                body = bytes(128) + b"DICM" + bytes(data.draw(st.integers(0, 300_000)))
            else:
                seed = seeds[dicom_index(data)]  # type: ignore[index]
                body = seed if kind == "dicom" else seed[: data.draw(st.integers(0, len(seed)))]
            info = zipfile.ZipInfo(data.draw(MEMBER_NAMES, label="name"))
            info.compress_type = method
            if data.draw(st.booleans(), label="symlink"):
                info.external_attr = 0o120777 << 16
            zf.writestr(info, body)
    archive = bytearray(buffer.getvalue())
    if archive and data.draw(st.booleans(), label="damage"):
        for _ in range(data.draw(st.integers(1, 4))):
            archive[data.draw(st.integers(0, len(archive) - 1))] = data.draw(st.integers(0, 255))
    name = data.draw(st.sampled_from(["WL_fuzz.zip", "archive.zip", "no_suffix"]), label="zip name")
    check(corpus["folder"], {name: bytes(archive)})  # type: ignore[arg-type]


def test_many_hostile_files_in_one_batch(corpus: dict[str, object]) -> None:
    """One batch of files that each fail differently: each gets its own verdict, the batch goes on."""
    seed = corpus["dicoms"][0]  # type: ignore[index]
    files = {
        "RI.QA.PF_empty.dcm": b"",
        "RI.QA.PF_half.dcm": seed[: len(seed) // 2],
        "RI.QA.PF_marker_only.dcm": bytes(128) + b"DICM",
        "CT slice Ω.dcm": bytes(128) + b"DICM" + b"\xff" * 64,
        "WL_fuzz.zip": b"PK\x03\x04" + bytes(100),
        "notes": b"plain text notes\n",
    }
    out = check(corpus["folder"], files)  # type: ignore[arg-type]
    assert all(cf.status is not None for cf in out)
