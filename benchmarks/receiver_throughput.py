"""Throughput and memory of the DICOM receiver (issue 18, acceptance 2): portal-sized RT images sent
over loopback to `python -m deployments.receive`, started as a user starts it.

    python benchmarks/receiver_throughput.py [--images 2000] [--per-association 50] [--side 1184]
                                             [--workdir DIR]

Each image is `side` x `side` 16-bit pixels (1184: 2.8 MB, an aS1200 portal image) with a fresh SOP
Instance UID; a few pixel arrays are reused, since only the bytes on the wire and on disk matter to
the receiver. Images go in associations of `--per-association`, as an EPID workstation or ARIA sends
a session. Every stored instance is checked (one file per image, none temporary), then deleted, so
that 2,000 images need no 5.6 GB of disk; deleting does not touch the receiver's memory.

Reported: images per second and MB/s over the first 200 images and over all of them (stored and
acknowledged: the receiver answers only after the file is synced and renamed), and the receiver
process's RSS after the first 100 images (warm: pynetdicom and pydicom loaded, buffers sized), then
every 500, with the growth from the warm point to the end (the acceptance figure: under 10 %).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from linac_qa.intake.dicom_receiver import RECEIVED  # noqa: E402
from linac_qa.records.outputs import is_temporary  # noqa: E402
from linac_qa.testing.network import rt_images  # noqa: E402

AE_TITLE, CALLER = "LINACQA", "EPIDWS"
WARM, FAST = 100, 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_receiver(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    machines = workdir / "machines.yml"
    machines.write_text(
        "machines:\n"
        "  - name: bench\n"
        f"    directory: {workdir / 'qa'}\n"
        "    cron: '0 2 * * *'\n"
        "    timezone: Europe/Berlin\n"
        "    receiver:\n"
        f"      ae-title: {AE_TITLE}\n"
        f"      port: {port}\n"
        f"      allowed-callers: [{CALLER}]\n"
        "      listen: 127.0.0.1\n",
        encoding="utf-8",
    )
    log = (workdir / "receiver.log").open("wb")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "deployments.receive", "--machines", str(machines)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_listening(port: int, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit("the receiver did not start listening")


def collect(qa: Path) -> int:
    """Count the stored files (each must be final, never a temporary), then delete them."""
    n = 0
    for path in (qa / RECEIVED).rglob("*.dcm"):
        if is_temporary(path.name):
            raise SystemExit(f"a temporary file is left: {path}")
        path.unlink()
        n += 1
    return n


def _cpu(after: Any, before: Any) -> float:
    return float(after.user + after.system - before.user - before.system)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--per-association", type=int, default=50)
    p.add_argument("--side", type=int, default=1184)
    p.add_argument("--workdir", type=Path)
    args = p.parse_args()
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    from pynetdicom import AE

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="receiver-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    receiver = start_receiver(workdir, port)
    proc = psutil.Process(receiver.pid)
    templates = rt_images(4, side=args.side)
    image_bytes = len(templates[0].PixelData)
    ae = AE(ae_title=CALLER)
    ae.add_requested_context(str(templates[0].SOPClassUID), ExplicitVRLittleEndian)
    sent = stored = 0
    rss: dict[int, int] = {}
    fast_seconds = 0.0
    try:
        wait_listening(port)
        cpu_before = proc.cpu_times()
        own_before = psutil.Process().cpu_times()
        started = time.perf_counter()
        while sent < args.images:
            assoc = ae.associate("127.0.0.1", port, ae_title=AE_TITLE, max_pdu=4 << 20)
            if not assoc.is_established:
                raise SystemExit("association not established")
            for _ in range(min(args.per_association, args.images - sent)):
                ds = templates[sent % len(templates)]
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
                status = assoc.send_c_store(ds)
                if not status or status.Status != 0:
                    raise SystemExit(f"image {sent}: status {status}")
                sent += 1
                if sent == FAST:
                    fast_seconds = time.perf_counter() - started
                if sent == WARM or sent % 500 == 0 or sent == args.images:
                    rss[sent] = proc.memory_info().rss
            assoc.release()
            stored += collect(workdir / "qa")
        total_seconds = time.perf_counter() - started
        cpu_after, own_after = proc.cpu_times(), psutil.Process().cpu_times()
    finally:
        receiver.terminate()
        code = receiver.wait(30)
    mb = image_bytes / 1e6
    warm, last = rss[min(rss)], rss[max(rss)]
    figures = {
        "images": sent,
        "stored": stored,
        "image_mb": round(mb, 2),
        "per_association": args.per_association,
        "first_200_images_per_s": round(FAST / fast_seconds, 1) if fast_seconds else None,
        "all_images_per_s": round(sent / total_seconds, 1),
        "all_mb_per_s": round(sent * mb / total_seconds, 1),
        # CPU per image: on a loaded machine the rate is bounded by the cores, and this says what
        # the receiver itself costs (and what the sender, in this process, costs beside it).
        "receiver_cpu_ms_per_image": round(1000 * _cpu(cpu_after, cpu_before) / sent, 1),
        "sender_cpu_ms_per_image": round(1000 * _cpu(own_after, own_before) / sent, 1),
        "rss_mb": {n: round(v / 1e6, 1) for n, v in sorted(rss.items())},
        "rss_growth_percent_from_warm": round(100 * (last - warm) / warm, 1),
        "receiver_exit_status": code,
        "load_average": os.getloadavg(),
    }
    (workdir / "receiver_throughput.json").write_text(json.dumps(figures, indent=1), encoding="utf-8")
    print(json.dumps(figures, indent=1))
    ok = stored == sent and code == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
