"""A DICOM C-STORE receiver (storage SCP) that files what an EPID workstation, ARIA or an iView/XVI
pushes into `DIR/received/<date>/<series>/<SOPInstanceUID>.dcm`, where the ordinary discovery,
settle and grouping rules then find it like any exported file.

- Callers: an association from a calling AE title not in the allowed list (or, when addresses are
  given, from any other address) is rejected before anything is sent.
- Accepted: RT Image, CT, MR and secondary-capture storage, uncompressed (what pylinac reads);
  any other presentation context is refused at negotiation. C-ECHO is answered.
- Each instance is written as a Part-10 file (preamble and file meta, the dataset as sent) under a
  hidden temporary name in its final folder, synced, then renamed: a file under its final name is
  always whole; the folders are synced when the association ends. A SOP Instance UID already on
  disk is acknowledged and not written again.
- A write that fails (full disk, unwritable folder) answers "out of resources" (0xA700) and
  removes its temporary file; the sender keeps the instance and may send it again.
- The log names each association's caller, address, counts and bytes; never a patient.

Plain functions and classes: no Prefect here (deployments/receive.py runs it as a command,
flows/receive.py as a flow).
"""

from __future__ import annotations

import datetime as dt
import errno
import io
import ipaddress
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydicom import dcmread
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from linac_qa.records.outputs import fsync_dir, temporary_name
from linac_qa.sections import Section

log = logging.getLogger(__name__)

RECEIVED = "received"  # the folder under DIR that received instances go to

# The storage SOP classes a QA receiver takes: images pylinac analyses (portal images, CT and MR
# phantom scans, screenshots a vendor tool exports). Anything else (plans, doses, records) is
# refused at negotiation, so the sender is told at once rather than after the transfer.
STORAGE_CLASSES: dict[str, str] = {
    "RT Image": "1.2.840.10008.5.1.4.1.1.481.1",
    "CT Image": "1.2.840.10008.5.1.4.1.1.2",
    "Enhanced CT Image": "1.2.840.10008.5.1.4.1.1.2.1",
    "MR Image": "1.2.840.10008.5.1.4.1.1.4",
    "Enhanced MR Image": "1.2.840.10008.5.1.4.1.1.4.1",
    "Secondary Capture Image": "1.2.840.10008.5.1.4.1.1.7",
    "Multi-frame Grayscale Byte Secondary Capture Image": "1.2.840.10008.5.1.4.1.1.7.2",
    "Multi-frame Grayscale Word Secondary Capture Image": "1.2.840.10008.5.1.4.1.1.7.3",
}
# Uncompressed only: what pydicom decodes without extra image codecs. A sender converts.
TRANSFER_SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"]

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700  # C-STORE "Refused: out of resources": the disk is full or unwritable
CANNOT_UNDERSTAND = 0xC000  # C-STORE "Error: cannot understand": no usable UIDs in the dataset
# A-ASSOCIATE-RJ: rejected permanently, by the service user, "calling AE title not recognised".
REJECT_CALLING_AE = (0x01, 0x01, 0x03)

# A UID is digits and dots (PS3.5 9.1): checked before it becomes a file or folder name, so a
# hostile sender cannot write outside DIR/received.
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
# Dates in the order that says when the image was made; the first one present names the folder.
DATE_TAGS = ("ContentDate", "AcquisitionDate", "SeriesDate", "StudyDate")
HEADER_TAGS = ["SOPInstanceUID", "SeriesInstanceUID", *DATE_TAGS]

Writer = Callable[[Path, bytes], None]


# A DICOM AE title: 1-16 characters of the default repertoire, no backslash, not all spaces.
_AE_TITLE = re.compile(r"^(?=.*\S)[ -\[\]-~]{1,16}$")


class ReceiverSettings(Section):
    """`receiver:` of a machine: a DICOM storage receiver that files what the EPID workstation,
    ARIA or an iView/XVI sends into `<directory>/received/`, for the nightly run to analyse."""

    ae_title: str
    port: int = Field(ge=1, le=65535)
    allowed_callers: list[str] = Field(min_length=1)  # calling AE titles that may send
    allowed_addresses: list[str] = Field(default_factory=list)  # IP addresses or networks; empty: any
    listen: str = "0.0.0.0"  # the local address to listen on

    @field_validator("ae_title")
    @classmethod
    def _ae_title(cls, value: str) -> str:
        if not _AE_TITLE.match(value):
            raise ValueError(f"{value!r} is not an AE title: 1-16 printable characters, no backslash")
        return value.strip()

    @field_validator("allowed_callers")
    @classmethod
    def _callers(cls, value: list[str]) -> list[str]:
        return [cls._ae_title(v) for v in value]

    @field_validator("allowed_addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for v in value:
            try:
                ipaddress.ip_network(v, strict=False)
            except ValueError:
                raise ValueError(
                    f"{v!r} is not an IP address or network (e.g. 10.1.2.3 or 10.1.2.0/24)"
                ) from None
        return value

    def spec(self, machine: str, directory: str | Path) -> ReceiverSpec:
        return ReceiverSpec(
            name=machine,
            ae_title=self.ae_title,
            port=self.port,
            directory=Path(directory),
            allowed_callers=frozenset(self.allowed_callers),
            allowed_networks=networks(self.allowed_addresses),
            listen=self.listen,
        )

    def parameters(self, machine: str, directory: Path) -> dict[str, Any]:
        """The receive flow's parameters: all it needs, so that a worker on another host needs no
        machines file."""
        return {"machine": machine, "directory": str(directory), "receiver": self.model_dump(by_alias=True)}


@dataclass(frozen=True)
class ReceiverSpec:
    """One machine's receiver: who it is, where it listens, whom it accepts, where files go."""

    name: str  # the machine, for the log
    ae_title: str
    port: int
    directory: Path  # DIR: files go to DIR/received/...
    allowed_callers: frozenset[str]
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()  # empty: any address
    listen: str = "0.0.0.0"

    def admits(self, calling_ae: str, address: str) -> str | None:
        """None when this caller may associate; else why not (for the log)."""
        if calling_ae not in self.allowed_callers:
            return f"calling AE title {calling_ae!r} is not among the allowed callers"
        if self.allowed_networks:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                return f"address {address!r} is not an IP address"
            if not any(ip in net for net in self.allowed_networks):
                return f"address {address} is not among the allowed addresses"
        return None


def networks(addresses: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`10.1.2.3` or `10.1.2.0/24`; raises ValueError on anything else."""
    return tuple(ipaddress.ip_network(a, strict=False) for a in addresses)


@dataclass(frozen=True)
class Stored:
    path: Path
    written: bool  # False: a duplicate, already on disk


class InstanceStore:
    """Files instances under `DIR/received`, atomically, once per SOP Instance UID."""

    def __init__(self, directory: Path, write: Writer | None = None):
        self.root = directory / RECEIVED
        self._write = write or write_synced
        # One rename at a time: two associations delivering the same instance at once (a retry
        # racing the original) must not both count as written.
        self._lock = threading.Lock()

    def path_for(self, part10: bytes, received: dt.date) -> Path:
        """Where an instance goes; raises ValueError when its UIDs are not usable as names."""
        ds = dcmread(io.BytesIO(part10), stop_before_pixels=True, specific_tags=HEADER_TAGS)
        sop, series = str(ds.get("SOPInstanceUID", "")), str(ds.get("SeriesInstanceUID", ""))
        for what, uid in (("SOP Instance UID", sop), ("Series Instance UID", series)):
            if not _UID.match(uid) or len(uid) > 64:
                raise ValueError(f"no valid {what} ({uid[:70]!r})")
        return self.root / _folder_date(ds, received) / series / f"{sop}.dcm"

    def store(self, part10: bytes, received: dt.date) -> Stored:
        final = self.path_for(part10, received)
        if final.exists():
            return Stored(final, written=False)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_name(final)  # hidden: discovery skips it, and removes it after a crash
        try:
            self._write(tmp, part10)
            with self._lock:
                if final.exists():
                    return Stored(final, written=False)
                os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return Stored(final, written=True)


def write_synced(path: Path, data: bytes) -> None:
    """The bytes, on disk before the rename that names them (a power cut leaves no empty file)."""
    with open(path, "xb") as fp:
        fp.write(data)
        fp.flush()
        _datasync(fp.fileno())


# The content is what must be on disk; the file's times need not be (fdatasync: POSIX but not macOS).
_datasync = getattr(os, "fdatasync", os.fsync)


def _folder_date(ds: Any, received: dt.date) -> str:
    for tag in DATE_TAGS:
        found = _DATE.match(str(ds.get(tag, "") or ""))
        if found:
            try:
                return dt.date(*map(int, found.groups())).isoformat()
            except ValueError:  # 8 digits that are no date
                continue
    return received.isoformat()


@dataclass
class AssociationTally:
    caller: str
    address: str
    stored: int = 0
    duplicates: int = 0
    failed: int = 0
    bytes: int = 0
    folders: set[Path] = field(default_factory=set)  # where this association's files were renamed


@dataclass
class ReceiverTotals:
    """What the receiver did since it started (for tests, benchmarks and the stop message)."""

    associations: int = 0
    rejected: int = 0
    stored: int = 0
    duplicates: int = 0
    failed: int = 0
    bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, tally: AssociationTally) -> None:
        with self.lock:
            self.associations += 1
            self.stored += tally.stored
            self.duplicates += tally.duplicates
            self.failed += tally.failed
            self.bytes += tally.bytes


class DicomReceiver:
    """One storage SCP. `start()` listens in background threads; `stop()` closes it."""

    def __init__(self, spec: ReceiverSpec, *, write: Writer | None = None):
        self.spec = spec
        self.store = InstanceStore(spec.directory, write)
        self.totals = ReceiverTotals()
        self._tallies: dict[int, AssociationTally] = {}
        self._server: Any = None
        self.ae = AE(ae_title=spec.ae_title)
        # The largest P-DATA the sender may send us: fewer, larger PDUs for 3 MB portal images.
        self.ae.maximum_pdu_size = 4 << 20
        for uid in STORAGE_CLASSES.values():
            self.ae.add_supported_context(uid, TRANSFER_SYNTAXES)
        self.ae.add_supported_context(Verification)

    @property
    def port(self) -> int:
        """The port listened on (the configured one; the one the system chose for port 0)."""
        return int(self._server.server_address[1]) if self._server is not None else self.spec.port

    def start(self) -> None:
        self.spec.directory.joinpath(RECEIVED).mkdir(parents=True, exist_ok=True)
        handlers: list[Any] = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_ECHO, lambda event: SUCCESS),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_RELEASED, self._on_closed),
            (evt.EVT_ABORTED, self._on_closed),
        ]
        self._server = self.ae.start_server(
            (self.spec.listen, self.spec.port), block=False, evt_handlers=handlers
        )
        log.info(
            "%s: receiving as AE title %s on %s:%d into %s",
            self.spec.name,
            self.spec.ae_title,
            self.spec.listen,
            self.port,
            self.store.root,
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        t = self.totals
        log.info(
            "%s: stopped after %d association(s) (%d rejected): "
            "%d stored, %d duplicate(s), %d failed, %d bytes",
            self.spec.name,
            t.associations,
            t.rejected,
            t.stored,
            t.duplicates,
            t.failed,
            t.bytes,
        )

    def _on_requested(self, event: Any) -> None:
        assoc = event.assoc
        caller = str(assoc.requestor.primitive.calling_ae_title).strip()
        address = str(assoc.requestor.address)
        why = self.spec.admits(caller, address)
        if why is not None:
            with self.totals.lock:
                self.totals.rejected += 1
            log.warning("%s: association from %s@%s rejected: %s", self.spec.name, caller, address, why)
            assoc.acse.send_reject(*REJECT_CALLING_AE)
            _let_it_leave(assoc.dul)
            return
        self._tallies[id(assoc)] = AssociationTally(caller, address)

    def _on_store(self, event: Any) -> int:
        tally = self._tallies.get(id(event.assoc))
        part10 = event.encoded_dataset(include_meta=True)
        try:
            stored = self.store.store(part10, dt.date.today())
        except ValueError as exc:
            status, why = CANNOT_UNDERSTAND, str(exc)
        except OSError as exc:
            status, why = OUT_OF_RESOURCES, _os_reason(exc)
        else:
            if tally is not None:
                tally.bytes += len(part10) if stored.written else 0
                if stored.written:
                    tally.stored += 1
                    tally.folders.add(stored.path.parent)
                else:
                    tally.duplicates += 1
            return SUCCESS
        if tally is not None:
            tally.failed += 1
        log.error("%s: an instance could not be stored (status 0x%04X): %s", self.spec.name, status, why)
        return status

    def _on_closed(self, event: Any) -> None:
        tally = self._tallies.pop(id(event.assoc), None)
        if tally is None:  # a rejected association
            return
        # The renames are made durable once per association, not once per instance (a folder sync
        # costs as much as the file's): a C-STORE success promises no durability (that is Storage
        # Commitment's), and each file's content is synced before its rename, so a power cut
        # loses at most the last renames, never leaves a torn file under a final name.
        for folder in tally.folders:
            fsync_dir(folder)
        self.totals.add(tally)
        log.info(
            "%s: association from %s@%s %s: %d stored, %d duplicate(s), %d failed, %d bytes",
            self.spec.name,
            tally.caller,
            tally.address,
            "released" if event.event is evt.EVT_RELEASED else "aborted",
            tally.stored,
            tally.duplicates,
            tally.failed,
            tally.bytes,
        )


class ReceiverUnavailable(OSError):
    """A receiver cannot listen (its port is taken: most likely it is running already)."""


def receive_until(specs: list[ReceiverSpec], stop: threading.Event, say: Callable[[str], None]) -> None:
    """Start every receiver, receive until `stop` is set, then stop them all. Raises
    ReceiverUnavailable when one cannot listen (then none keeps running)."""
    started: list[DicomReceiver] = []
    try:
        for spec in specs:
            receiver = DicomReceiver(spec)
            try:
                receiver.start()
            except OSError as exc:
                raise ReceiverUnavailable(
                    f"{spec.name}: cannot listen on {spec.listen}:{spec.port}: {exc}"
                ) from exc
            started.append(receiver)
            where = f"port {receiver.port} into {receiver.store.root}"
            say(f"{spec.name}: receiving as AE title {spec.ae_title} on {where}")
        while not stop.wait(0.5):
            pass
    finally:
        for receiver in started:
            receiver.stop()


def _let_it_leave(dul: Any, limit_seconds: float = 2.0) -> None:
    """Wait until the DUL thread has sent the rejection: pynetdicom closes the connection as soon
    as this handler returns, and a sender whose connection closes before the A-ASSOCIATE-RJ arrives
    sees an abort ("network problem") instead of "calling AE title not recognised"."""
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline and not (dul.to_provider_queue.empty() and dul.event_queue.empty()):
        time.sleep(0.01)
    time.sleep(0.05)  # the PDU leaves the queue just before it is written to the socket


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return f"disk full: {exc}"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"folder not writable: {exc}"
    return str(exc)
