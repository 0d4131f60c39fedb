"""Varian MPC result folders as a TrueBeam or Halcyon writes them under its TDS share, from the
documented layout: a folder `NDS-WKS-SN<serial>-<YYYY-MM-DD-hh-mm-ss>-<nnnn>-<check>` holding a
`Results.csv` (`Name [Unit], Value, Threshold, Evaluation Result`, one row per measured quantity,
names as group paths) beside the check's images. Values are made up; the layout is Varian's."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

HEADER = "Name [Unit], Value, Threshold, Evaluation Result"
LEAVES = 60  # per bank, a Millennium 120 MLC

BEAM_ROWS = [
    ("BeamGroup/BeamOutputChange [%]", 0.35, 2.0),
    ("BeamGroup/BeamUniformityChange [%]", 0.21, 2.0),
    ("BeamGroup/BeamCenterShift [mm]", 0.12, 0.5),
]
GEOMETRY_ROWS = [
    ("IsoCenterGroup/IsoCenterSize [mm]", 0.30, 0.5),
    ("IsoCenterGroup/IsoCenterMVOffset [mm]", 0.26, 0.5),
    ("IsoCenterGroup/IsoCenterKVOffset [mm]", 0.25, 0.5),
    *BEAM_ROWS,
    ("CollimationGroup/MLCGroup/MLCMaxOffsetA [mm]", 0.33, 1.0),
    ("CollimationGroup/MLCGroup/MLCMaxOffsetB [mm]", 0.38, 1.0),
    ("CollimationGroup/MLCGroup/MLCMeanOffsetA [mm]", 0.24, 1.0),
    ("CollimationGroup/MLCGroup/MLCMeanOffsetB [mm]", 0.22, 1.0),
    ("CollimationGroup/MLCBacklashGroup/MLCBacklashMaxA [mm]", 0.10, 0.5),
    ("CollimationGroup/MLCBacklashGroup/MLCBacklashMaxB [mm]", 0.11, 0.5),
    ("CollimationGroup/JawsGroup/JawX1 [mm]", 0.15, 1.0),
    ("CollimationGroup/JawsGroup/JawX2 [mm]", -0.12, 1.0),
    ("CollimationGroup/JawsGroup/JawY1 [mm]", 0.20, 1.0),
    ("CollimationGroup/JawsGroup/JawY2 [mm]", 0.05, 1.0),
    ("CollimationGroup/CollimationRotationOffset [°]", 0.08, 0.5),
    ("GantryGroup/GantryAbsolute [°]", -0.09, 0.3),
    ("GantryGroup/GantryRelative [°]", 0.11, 0.3),
    ("CouchGroup/CouchLat [mm]", 0.21, 0.7),
    ("CouchGroup/CouchLng [mm]", 0.18, 0.7),
    ("CouchGroup/CouchVrt [mm]", 0.09, 0.7),
    ("CouchGroup/CouchRtn [°]", 0.05, 0.3),
]
# Rows a Halcyon writes without a threshold or an evaluation (measured, not judged by MPC).
HALCYON_UNJUDGED = [("BeamGroup/BeamMu1GainChange [%]", 0.14), ("BeamGroup/BeamMu2GainChange [%]", 0.12)]


def leaf_rows() -> list[tuple[str, float, float]]:
    rows = []
    for group, leaf in (
        ("MLCGroup/MLCLeaves", "MLCLeaf"),
        ("MLCBacklashGroup/MLCBacklashLeaves", "MLCBacklashLeaf"),
    ):
        for bank in "AB":
            rows += [
                (f"CollimationGroup/{group}{bank}/{leaf}{n} [mm]", 0.01 * (n % 7), 1.0)
                for n in range(1, LEAVES + 1)
            ]
    return rows


def check_folder(
    tds: Path,
    check: str,
    when: dt.datetime,
    *,
    serial: str = "1234",
    station: str = "NDS-WKS",
    fail: dict[str, float] | None = None,
    halcyon: bool = False,
    images: int = 2,
) -> Path:
    """One check's folder with its Results.csv (and `images` stand-ins for its .xim images). `fail`:
    row names whose value is set and evaluated "Fail". Every file is dated `when`, as MPC wrote it."""
    folder = tds / f"{station}-SN{serial}-{when:%Y-%m-%d-%H-%M-%S}-0000-{check}"
    folder.mkdir(parents=True)
    rows = list(BEAM_ROWS if check.startswith("Beam") else [*GEOMETRY_ROWS, *leaf_rows()])
    lines = [HEADER]
    for name, value, threshold in rows:
        if fail and name in fail:
            lines.append(f"{name}, {fail[name]}, {threshold}, Fail")
        else:
            lines.append(f"{name}, {value}, {threshold}, Pass")
    if halcyon:
        lines += [f"{name}, {value}, , " for name, value in HALCYON_UNJUDGED]
    # Windows line ends and the degree sign, as the MPC workstation writes them.
    (folder / "Results.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8"))
    for n in range(images):
        (folder / f"MV_Image_{n + 1}.xim").write_bytes(b"XIM\x00" + bytes(64))
    stamp = when.timestamp()
    for path in folder.iterdir():
        os.utime(path, (stamp, stamp))
    return folder


def truebeam_morning(
    tds: Path, when: dt.datetime, *, serial: str = "1234", fail: dict[str, float] | None = None
) -> list[Path]:
    """A morning's MPC: the geometry check, then beam checks of 6X, 10X and 6FFF, a minute apart.
    `fail` applies to the 10X beam check."""
    checks = [
        "GeometryCheckTemplate6xMVkV",
        "BeamCheckTemplate6x",
        "BeamCheckTemplate10x",
        "BeamCheckTemplate6xFFF",
    ]
    return [
        check_folder(
            tds,
            check,
            when + dt.timedelta(minutes=i),
            serial=serial,
            fail=fail if check.endswith("10x") else None,
        )
        for i, check in enumerate(checks)
    ]
