"""What real linacs export, reproduced with pydicom: other transfer syntaxes, files without the
preamble, the test named only by a folder or the QA patient, routing rules, VMAT sessions of several
energies in one series, sets spread over one folder per image, and damaged series. Classification
and grouping only: no Prefect, no pylinac analysis."""

from __future__ import annotations

import datetime as dt
import time
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from linac_qa.config import ConfigError, Settings, load_settings
from linac_qa.grouping.plan import Plan, group_context, plan
from linac_qa.intake.classify import classify_files
from linac_qa.intake.headers import looks_like_dicom, read_header
from linac_qa.testing import synthetic, synthetic_ct, synthetic_vmat

SETTINGS = load_settings(text="general:\n  settle-seconds: 0\n")


def rewrite(path: Path, syntax: str | None = None, *, preamble: bool = True, **tags: str) -> Path:
    """`path` rewritten in place: another transfer syntax, other tags, or a bare data set without
    the preamble, `DICM` and file meta, as older exports write them (implicit VR little endian)."""
    ds = pydicom.dcmread(path)
    for keyword, value in tags.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    if syntax == RLELossless:
        ds.compress(RLELossless)
    elif syntax is not None:
        ds.file_meta.TransferSyntaxUID = syntax
        ds.is_implicit_VR = syntax == ImplicitVRLittleEndian
        ds.is_little_endian = syntax != ExplicitVRBigEndian
    if preamble:
        ds.save_as(str(path), write_like_original=False)
    else:
        out = DicomBytesIO()
        out.is_little_endian, out.is_implicit_VR = True, True
        ds.is_little_endian, ds.is_implicit_VR = True, True
        write_dataset(out, ds)  # the data set alone: no preamble, no DICM, no file meta
        path.write_bytes(out.getvalue())
    return path


def classified(root: Path, settings: Settings = SETTINGS) -> dict[str, object]:
    rels = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return {cf.path: cf for cf in classify_files(root, rels, settings)}


def plan_of(root: Path, settings: Settings = SETTINGS, *, hours_later: float = 0) -> Plan:
    rels = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    ctx = group_context(root, settings, now=time.time() + hours_later * 3600)
    return plan(classify_files(root, rels, settings), settings, ctx)


def header_of(path: Path):  # type: ignore[no-untyped-def]
    with path.open("rb") as fp:
        head = fp.read(132)
        assert looks_like_dicom(head)
        fp.seek(0)
        return read_header(fp, path.stat().st_size)


@pytest.mark.parametrize(
    "syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian, RLELossless]
)
def test_every_transfer_syntax_is_whole_when_whole_and_cut_when_cut(tmp_path: Path, syntax: str) -> None:
    path = rewrite(synthetic.starshot(tmp_path / "RI.QA.Star.dcm", wobble_mm=0.1), syntax)
    header = header_of(path)
    assert header.has_pixels and header.pixel_bytes_missing == 0
    data = path.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) - 1000])
    if syntax == DeflatedExplicitVRLittleEndian:  # a cut deflate stream cannot even be inflated
        with pytest.raises(Exception):  # noqa: B017
            header_of(cut)
    else:
        assert header_of(cut).pixel_bytes_missing > 0


def test_an_implicit_vr_picket_fence_is_routed_not_truncated(tmp_path: Path) -> None:
    path = rewrite(synthetic.picket_fence(tmp_path / "RI.QA.PF_A.dcm"), ImplicitVRLittleEndian)
    (cf,) = classified(tmp_path).values()
    assert cf.analysis == "picket-fence" and cf.status is None, cf.reason  # type: ignore[attr-defined]
    assert path.read_bytes()[128:132] == b"DICM"


def test_dicom_without_preamble_is_dicom_and_random_bytes_are_not(tmp_path: Path) -> None:
    bare = rewrite(synthetic.starshot(tmp_path / "star.dcm", wobble_mm=0.1), preamble=False)
    assert bare.read_bytes()[:2] == b"\x08\x00"  # starts with a group 0008 element
    cf = classified(tmp_path)["star.dcm"]
    assert cf.analysis == "starshot" and cf.header.has_pixels, cf.reason  # type: ignore[attr-defined]
    for seed in range(200):
        noise = synthetic.random_bytes(tmp_path / "noise" / f"{seed}.bin", n=512, seed=seed)
        assert not looks_like_dicom(noise.read_bytes()[:132])


def test_the_type_named_only_by_a_folder_or_the_qa_patient(tmp_path: Path) -> None:
    anonymous = {"RTImageLabel": "MV_0_0a", "RTImageName": None, "RTImageDescription": "6x [MV]"}
    anonymous |= {"SeriesDescription": None, "StudyDescription": "ARIA RadOnc Study"}
    rewrite(synthetic.picket_fence(tmp_path / "Picket Fence" / "2024" / "RI.Z1.MV_0_0a.dcm"), **anonymous)
    rewrite(
        synthetic.starshot(tmp_path / "Z20190814" / "RI.Z2.MV_0_0a.dcm", wobble_mm=0.1),
        ImplicitVRLittleEndian,
        PatientName="LUTZ^WINSTON",
        PatientID="Z20190814",
        **anonymous,
    )
    rewrite(synthetic.starshot(tmp_path / "Misc" / "RI.Z3.MV_0_0a.dcm", wobble_mm=0.1), **anonymous)
    found = classified(tmp_path)
    pf = found["Picket Fence/2024/RI.Z1.MV_0_0a.dcm"]
    assert pf.analysis == "picket-fence"  # type: ignore[attr-defined]
    assert pf.reason == "'picket fence' in the folder name 'Picket Fence'"  # type: ignore[attr-defined]
    wl = found["Z20190814/RI.Z2.MV_0_0a.dcm"]
    assert wl.analysis == "winston-lutz" and "PatientName 'LUTZ^WINSTON'" in wl.reason  # type: ignore[attr-defined]
    nothing = found["Misc/RI.Z3.MV_0_0a.dcm"]  # named by nothing: its pixels decide (intake.recognise)
    assert nothing.by_content and nothing.reason == "recognised by content: starshot, 8 spokes"  # type: ignore[attr-defined]


def test_the_file_name_outranks_the_folder(tmp_path: Path) -> None:
    synthetic.starshot(tmp_path / "Picket Fence" / "RI.QA.Starshot.dcm", wobble_mm=0.1)
    (cf,) = classified(tmp_path).values()
    assert cf.analysis == "starshot" and cf.reason == "'starshot' in the name"  # type: ignore[attr-defined]


ROUTED = """
general: {settle-seconds: 0}
routing:
  - dicom: {PatientID: "^PHYS_PF"}
    analysis: picket-fence
    variant: {mlc: HD Millennium}
  - path: "*/scratch/*"
    analysis: ignore
  - path: "unit2/*.dcm"
    dicom: {RTImageLabel: "^MV_"}
    analysis: field-analysis
    variant: {fff: true}
"""


def test_routing_rules_come_first_and_say_so(tmp_path: Path) -> None:
    settings = load_settings(text=ROUTED)
    rewrite(synthetic.starshot(tmp_path / "unit1" / "a.dcm", wobble_mm=0.1), PatientID="PHYS_PF_2024")
    synthetic.starshot(tmp_path / "unit1" / "scratch" / "RI.QA.Starshot.dcm", wobble_mm=0.1)
    rewrite(synthetic.open_field(tmp_path / "unit2" / "b.dcm"), RTImageLabel="MV_0_0a")
    found = classified(tmp_path, settings)
    first = found["unit1/a.dcm"]
    assert first.analysis == "picket-fence" and first.variant == {"mlc": "HD Millennium"}  # type: ignore[attr-defined]
    assert first.reason == "routing rule 1 (PatientID ~ '^PHYS_PF')"  # type: ignore[attr-defined]
    skipped = found["unit1/scratch/RI.QA.Starshot.dcm"]
    assert skipped.status == "ignored" and "routing rule 2" in skipped.reason  # type: ignore[attr-defined]
    field = found["unit2/b.dcm"]
    assert field.analysis == "field-analysis" and "routing rule 3" in field.reason  # type: ignore[attr-defined]
    work = plan_of(tmp_path, settings)
    variants = {acq.files[0]: acq.variant for acq in work.acquisitions}
    assert variants["unit1/a.dcm"]["mlc"] == "HD Millennium" and variants["unit2/b.dcm"]["fff"] is True


@pytest.mark.parametrize(
    ("rules", "key", "says"),
    [
        ("- {path: '*', analysis: picket-fens}", "routing.0.analysis", "not an enabled section"),
        ("- {analysis: starshot}", "routing.0", "needs `path`"),
        ("- {dicom: {PatientNam: x}, analysis: starshot}", "routing.0.dicom", "not a DICOM attribute"),
        ("- {dicom: {PatientID: '('}, analysis: starshot}", "routing.0.dicom", "not a regular expression"),
        ("- {path: '*', analysis: starshot, variant: {mlc: x}}", "routing.0.variant", "takes no variant"),
        ("- {path: '*', analysis: cbct, variant: {model: CatPhan999}}", "routing.0.variant", "not one of"),
        ("- {path: '*', analysis: ignore, variant: {fff: true}}", "routing.0.variant", "takes no variant"),
        ("{path: '*'}", "routing", "must be a list"),
    ],
)
def test_a_bad_routing_rule_is_a_config_error_naming_the_key(rules: str, key: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as err:
        load_settings(text=f"routing:\n  {rules}\n", source="clinic.yml")
    assert err.value.key == key and str(err.value).startswith("clinic.yml, line")


def test_a_vmat_session_of_three_energies_in_one_series_pairs_by_energy(tmp_path: Path) -> None:
    folder = tmp_path / "Physics_Monthly"
    start = dt.datetime(2024, 3, 4, 8, 0)
    energies = ("6x", "10x", "6xFFF")
    for n, energy in enumerate(energies):
        opened, dmlc = synthetic_vmat.vmat_pair(folder / energy, seed=n)
        # Every open image first, then the DMLC images in the reverse order: time alone would pair
        # them wrong; only the energy pairs them right.
        times = {opened: start + dt.timedelta(minutes=n), dmlc: start + dt.timedelta(minutes=9 - n)}
        for image in (opened, dmlc):
            # One folder and one series for the whole session; only the DMLC image is named.
            name = "RI.Monthly.DRGS.dcm" if image is dmlc else f"RI.Monthly.MV_0_0a{n}.dcm"
            clock = times[image].strftime("%H%M%S")
            rewrite(
                image,
                SeriesInstanceUID="1.2.3.4.5",
                SeriesDescription=None,
                RTImageName=None,
                RTImageLabel="MV_1_DRGS" if image is dmlc else f"MV_0_0a{n}",
                RTImageDescription=f"{energy} [MV], 600 [MU/min]",
                AcquisitionTime=clock,
                ContentTime=clock,
            ).rename(folder / f"{energy}_{name}")
        (folder / energy).rmdir()
    work = plan_of(tmp_path)
    assert not work.decided and work.waiting == 0
    pairs = sorted(sorted(acq.files) for acq in work.acquisitions)
    assert pairs == sorted(
        [f"Physics_Monthly/{e}_RI.Monthly.DRGS.dcm", f"Physics_Monthly/{e}_RI.Monthly.MV_0_0a{m}.dcm"]
        for m, e in enumerate(energies)
    )
    assert {acq.variant["test"] for acq in work.acquisitions} == {"DRGS"}
    assert len({acq.output_stem for acq in work.acquisitions}) == 3


def test_a_vmat_pair_in_a_zip_is_that_pair(tmp_path: Path) -> None:
    pair = synthetic_vmat.vmat_pair(tmp_path / "src", test="drmlc")
    with zipfile.ZipFile(tmp_path / "VMAT_DRMLC_0304.zip", "w") as zf:
        for image in pair:
            zf.write(image, image.name)
            image.unlink()
    (tmp_path / "src").rmdir()
    work = plan_of(tmp_path)
    (acq,) = work.acquisitions
    assert acq.files == ("VMAT_DRMLC_0304.zip",) and acq.variant["images"] == 2 and not work.decided


def test_a_winston_lutz_set_over_one_folder_per_image_is_one_set(tmp_path: Path) -> None:
    images = synthetic.winston_lutz_set(tmp_path / "flat")
    for n, image in enumerate(images):
        target = tmp_path / "DICOM" / f"IM{n:04d}" / "IM0001"
        target.parent.mkdir(parents=True)
        rewrite(image, ImplicitVRLittleEndian, preamble=False).rename(target)
    (tmp_path / "flat").rmdir()
    work = plan_of(tmp_path)
    (acq,) = work.acquisitions
    assert acq.analysis == "winston-lutz" and len(acq.files) == len(images) and not work.decided
    assert acq.output_stem.startswith("DICOM/")


def test_a_damaged_ct_series_is_one_error_listing_its_files(tmp_path: Path) -> None:
    slices = synthetic_ct.catphan504_series(tmp_path / "CatPhan", synthetic_ct.CatPhanScan(beyond_phantom=21))
    assert len(slices) == 60
    for path in slices:
        path.write_bytes(path.read_bytes()[:-100])
    work = plan_of(tmp_path)
    assert not work.acquisitions
    (error,) = work.decided
    assert error.status == "error" and len(error.files) == 60
    assert error.reason.startswith("60 of 60 files of this set cannot be read: 60 x truncated")


def test_an_exports_dicomdir_is_ignored_and_an_image_cut_before_its_pixels_is_an_error(
    tmp_path: Path,
) -> None:
    from pydicom.fileset import FileSet

    image = synthetic.starshot(tmp_path / "src" / "RI.QA.Star.dcm", wobble_mm=0.1)
    header_only = pydicom.dcmread(image)
    del header_only.PixelData
    fs = FileSet()
    fs.add(str(image))
    fs.write(str(tmp_path / "WL_2022"))  # DICOMDIR plus the image under WL_2022/PT000000/...
    image.unlink()
    header_only.save_as(str(tmp_path / "WL_2022" / "cut.dcm"), write_like_original=False)
    found = classified(tmp_path)
    index = found["WL_2022/DICOMDIR"]
    assert index.status == "ignored" and "DICOMDIR" in index.reason  # type: ignore[attr-defined]
    cut = found["WL_2022/cut.dcm"]
    assert cut.status == "error" and cut.reason.startswith("truncated")  # type: ignore[attr-defined]


def test_pylinac_analyses_a_bare_implicit_vr_image_and_a_winston_lutz_set_over_folders(
    tmp_path: Path,
) -> None:
    """The worker job, as a run makes it, on files as older exports write them."""
    from linac_qa.execution.runner import run_job
    from linac_qa.records.ledger import Ledger
    from linac_qa.run import Run

    star = synthetic.starshot(tmp_path / "Starshot" / "IM0001", wobble_mm=0.1)
    rewrite(star, preamble=False, RTImageLabel="MV_0_0a", SeriesDescription=None, RTImageName=None)
    for n, image in enumerate(synthetic.winston_lutz_set(tmp_path / "flat")):
        target = tmp_path / "DICOM" / f"IM{n:04d}" / "IM0001"
        target.parent.mkdir(parents=True)
        rewrite(image, ImplicitVRLittleEndian, preamble=False, PatientName="LUTZ^WINSTON").rename(target)
    (tmp_path / "flat").rmdir()
    work = plan_of(tmp_path)
    run = Run(tmp_path, SETTINGS, Ledger.open(tmp_path))
    outcomes = {acq.analysis: run_job(run.job(acq)).result for acq in work.acquisitions}
    assert outcomes.keys() == {"starshot", "winston-lutz"} and not work.decided
    assert all(r.status == "passed" for r in outcomes.values()), [r.reason for r in outcomes.values()]
    assert outcomes["winston-lutz"].metrics["images"] == len(outcomes["winston-lutz"].files)


def test_a_copy_of_one_image_elsewhere_never_joins_its_series_set(tmp_path: Path) -> None:
    images = synthetic.winston_lutz_set(tmp_path / "WL_A")
    (tmp_path / "RI.QA.WL_copy.dcm").write_bytes(images[0].read_bytes())
    work = plan_of(tmp_path)
    (acq,) = work.acquisitions
    assert acq.files == tuple(sorted(p.relative_to(tmp_path).as_posix() for p in images))
    (copy,) = work.decided
    assert copy.files == ["RI.QA.WL_copy.dcm"] and "same SOP Instance UID" in copy.reason


def test_a_stray_copy_in_a_busier_folder_never_takes_a_sets_image(tmp_path: Path) -> None:
    images = synthetic.winston_lutz_set(tmp_path / "WL_A")
    busy = synthetic.WinstonLutzSession(prefix="RI.QA.WL_0900_", when=dt.datetime(2024, 3, 4, 9, 0), seed=3)
    synthetic.winston_lutz_set(tmp_path, busy)  # more images beside the copy than in the set's folder
    (tmp_path / "RI.QA.WL_copy.dcm").write_bytes(images[0].read_bytes())
    work = plan_of(tmp_path)
    own = next(a for a in work.acquisitions if a.files[0].startswith("WL_A/"))
    assert own.files == tuple(sorted(p.relative_to(tmp_path).as_posix() for p in images))
    (copy,) = work.decided
    assert copy.files == ["RI.QA.WL_copy.dcm"] and "same SOP Instance UID" in copy.reason


def test_images_of_one_study_each_in_a_folder_and_series_of_its_own_are_one_set(tmp_path: Path) -> None:
    images = synthetic.winston_lutz_set(tmp_path / "flat")
    for n, image in enumerate(images):
        target = tmp_path / "export" / f"SE{n:04d}" / "IM0001"
        target.parent.mkdir(parents=True)
        rewrite(image, SeriesInstanceUID=f"1.2.3.{n}").rename(target)
    (tmp_path / "flat").rmdir()
    (acq,) = plan_of(tmp_path).acquisitions
    assert len(acq.files) == len(images)


def test_the_same_image_twice_is_analysed_once_and_the_copy_says_so(tmp_path: Path) -> None:
    images = synthetic.winston_lutz_set(tmp_path / "flat")
    (tmp_path / "flat" / "RI.QA.WL_again.dcm").write_bytes(images[0].read_bytes())
    work = plan_of(tmp_path)
    (acq,) = work.acquisitions
    assert len(acq.files) == len(images) and "flat/RI.QA.WL_again.dcm" not in acq.files
    (copy,) = work.decided
    assert copy.status == "ignored" and copy.reason.startswith(f"the same image as {acq.files[0]}")


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_header_texts_in_other_character_sets_and_several_values_read_as_pydicom_reads_them(
    tmp_path: Path, syntax: str
) -> None:
    image = synthetic.starshot(tmp_path / "RI.QA.Starshot_A.dcm")
    names = {"ISO_IR 144": "Иванов^Пётр", "ISO_IR 192": "Müller^Zoë", "ISO_IR 100": "Müller^Zoe"}
    for charset, name in names.items():
        rewrite(image, syntax, SpecificCharacterSet=charset, PatientName=name, ImageType="ORIGINAL\\PRIMARY")
        with image.open("rb") as fp:
            header = read_header(fp, image.stat().st_size, ["ImageType"])
        assert dict(header.patient_texts)["PatientName"] == name
        assert header.attributes["ImageType"] == str(pydicom.dcmread(image).ImageType)
        assert header.has_pixels and header.pixel_bytes_missing == 0


def test_the_acquisition_time_carries_its_time_zone(tmp_path: Path) -> None:
    """The file's own offset from UTC when it has one, else this computer's zone: never a bare time."""
    plain = synthetic.starshot(tmp_path / "RI.QA.Starshot_A.dcm")
    ds = pydicom.dcmread(plain)
    ds.AcquisitionDate, ds.AcquisitionTime, ds.TimezoneOffsetFromUTC = "20240305", "020000", "-0500"
    ds.save_as(tmp_path / "offset.dcm")
    with_offset = header_of(tmp_path / "offset.dcm").acquired
    assert with_offset.isoformat() == "2024-03-05T02:00:00-05:00"
    local = header_of(plain).acquired
    assert local is not None and local.utcoffset() == local.astimezone().utcoffset()
