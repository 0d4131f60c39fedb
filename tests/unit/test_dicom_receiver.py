"""The DICOM receiver on 127.0.0.1, with pynetdicom as the sender (issue 18, acceptance 1): what
arrives is filed once, whole, where discovery finds it; strangers are turned away; a full disk
answers a failure status and leaves nothing behind."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from linac_qa.config import load_settings
from linac_qa.grouping.plan import plan_directory
from linac_qa.intake.dicom_receiver import (
    OUT_OF_RESOURCES,
    RECEIVED,
    SUCCESS,
    DicomReceiver,
    ReceiverSpec,
    networks,
    write_synced,
)
from linac_qa.records.outputs import is_temporary
from linac_qa.testing.network import ct_series, echo, rt_images, rt_plan, send

AE_TITLE, CALLER = "LINACQA", "EPIDWS"


def spec(root: Path, **changes: object) -> ReceiverSpec:
    base: dict[str, object] = {
        "name": "truebeam1",
        "ae_title": AE_TITLE,
        "port": 0,  # the system chooses a free one
        "directory": root,
        "allowed_callers": frozenset({CALLER}),
        "listen": "127.0.0.1",
    }
    return ReceiverSpec(**{**base, **changes})  # type: ignore[arg-type]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[DicomReceiver]:
    r = DicomReceiver(spec(tmp_path))
    r.start()
    yield r
    r.stop()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in (root / RECEIVED).rglob("*") if p.is_file())


def test_received_instances_are_filed_once_and_whole_then_planned_like_any_export(
    receiver: DicomReceiver, tmp_path: Path
) -> None:
    rt = rt_images(3)
    ct = ct_series(80)
    kw = {"called": AE_TITLE, "calling": CALLER}
    assert send(rt, receiver.port, **kw) == [SUCCESS] * 3
    assert send(ct, receiver.port, **kw) == [SUCCESS] * 80
    assert send(rt, receiver.port, **kw) == [SUCCESS] * 3  # duplicates: acknowledged, not written
    files = files_under(tmp_path)
    assert len(files) == 83
    assert not any(is_temporary(p.name) for p in files)
    ct_folder = tmp_path / RECEIVED / "2026-11-30" / str(ct[0].SeriesInstanceUID)
    assert len(list(ct_folder.iterdir())) == 80
    first = dcmread(ct_folder / f"{ct[0].SOPInstanceUID}.dcm")
    assert first.file_meta.MediaStorageSOPInstanceUID == ct[0].SOPInstanceUID  # a Part-10 file
    assert first.PixelData == ct[0].PixelData
    totals = receiver.totals
    receiver.stop()  # the association tallies are added when each association closes
    assert (totals.stored, totals.duplicates, totals.failed) == (83, 3, 0)

    # What the next run would analyse: the CT series as one acquisition, the RT images each on
    # their own (unnamed here, so ignored by content or analysed singly, never grouped with the CT).
    settings = load_settings(text="general:\n  settle-seconds: 0\n")
    planned = plan_directory(tmp_path, settings, {}, force=False, retry_errors=False)
    ct_sets = [a for a in planned.plan.acquisitions if len(a.files) > 1]
    assert [(a.analysis, len(a.files)) for a in ct_sets] == [("cbct", 80)]
    looked_at = {f for a in planned.plan.acquisitions for f in a.files} | {
        f for r in planned.plan.decided for f in r.files
    }
    assert len(looked_at) == 83


def test_unknown_callers_are_rejected_and_echo_is_answered(tmp_path: Path) -> None:
    r = DicomReceiver(spec(tmp_path, allowed_networks=networks(["10.0.0.0/8"])))
    r.start()
    try:
        with pytest.raises(ConnectionError, match="rejected: True"):
            send(rt_images(1), r.port, called=AE_TITLE, calling="STRANGER")
        with pytest.raises(ConnectionError, match="rejected: True"):  # allowed title, wrong address
            send(rt_images(1), r.port, called=AE_TITLE, calling=CALLER)
    finally:
        r.stop()
    assert r.totals.rejected == 2 and files_under(tmp_path) == []
    open_to_all = DicomReceiver(spec(tmp_path))
    open_to_all.start()
    try:
        assert echo(open_to_all.port, called=AE_TITLE, calling=CALLER) == SUCCESS
        # A storage class it does not take is refused at negotiation: nothing to send it over.
        with pytest.raises(ValueError, match="presentation context"):
            send([*rt_images(1), rt_plan()], open_to_all.port, called=AE_TITLE, calling=CALLER)
    finally:
        open_to_all.stop()


def test_a_full_disk_answers_a_failure_status_and_leaves_no_partial_file(tmp_path: Path) -> None:
    def disk_fills_halfway(path: Path, data: bytes) -> None:
        write_synced(path, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    r = DicomReceiver(spec(tmp_path), write=disk_fills_halfway)
    r.start()
    try:
        statuses = send(rt_images(2), r.port, called=AE_TITLE, calling=CALLER)
    finally:
        r.stop()
    assert statuses == [OUT_OF_RESOURCES] * 2
    assert files_under(tmp_path) == []  # neither a final nor a temporary file
    assert r.totals.failed == 2


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_instance_uids_that_are_no_uids_never_become_paths(tmp_path: Path) -> None:
    r = DicomReceiver(spec(tmp_path))
    r.start()
    try:
        (ds,) = rt_images(1)
        ds.SeriesInstanceUID = "../../escape"
        assert send([ds], r.port, called=AE_TITLE, calling=CALLER) == [0xC000]
    finally:
        r.stop()
    assert files_under(tmp_path) == [] and not (tmp_path.parent / "escape").exists()


def test_the_receive_command_runs_the_machines_receivers_until_stopped(tmp_path: Path) -> None:
    import socket
    import threading

    from deployments.receive import EXIT_OK, EXIT_PORT_IN_USE, EXIT_USAGE, main

    def machines(receiver: str = "") -> str:
        path = tmp_path / "machines.yml"
        path.write_text(
            "machines:\n  - {name: tb1, directory: qa, cron: '0 2 * * *', timezone: Europe/Berlin"
            + receiver
            + "}\n",
            encoding="utf-8",
        )
        return str(path)

    assert main(["--machines", machines()]) == EXIT_USAGE  # no receiver: nothing to run
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        section = (
            f", receiver: {{ae-title: {AE_TITLE}, port: {port}, allowed-callers: [{CALLER}],"
            " listen: 127.0.0.1}"
        )
        assert main(["--machines", machines(section)], threading.Event()) == EXIT_PORT_IN_USE
    stop = threading.Event()
    ended: list[int] = []
    runner = threading.Thread(target=lambda: ended.append(main(["--machines", machines(section)], stop)))
    runner.start()
    try:
        for _ in range(100):  # listening within a few seconds
            try:
                assert echo(port, called=AE_TITLE, calling=CALLER) == SUCCESS
                break
            except ConnectionError:
                stop.wait(0.05)
        else:
            raise AssertionError("the receiver did not start")
    finally:
        stop.set()
        runner.join(10)
    assert ended == [EXIT_OK]
    assert len(list((tmp_path / "qa" / RECEIVED).iterdir())) == 0  # an echo stores nothing
