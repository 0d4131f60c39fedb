"""The record exported: a CSV table (pandas), and a QuAAC document (pylinac's QA exchange format,
through the `quaac` package): each value a data point at its acquisition time, the machine as its
equipment, the result's PDF attached."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from linac_qa.history.record import RECORD_FILE, Record, Row
from linac_qa.records.ledger import STATE_DIR

CSV_COLUMNS = (
    "machine", "analysis", "metric", "variant", "acquired", "value", "unit", "status", "level",
    "baseline", "tolerance_low", "tolerance_high", "action_low", "action_high", "drift", "result_id",
    "report", "sources",
)  # fmt: skip


def rows(
    directory: Path, machine: str | None = None, since: str | None = None, before: str | None = None
) -> list[Row]:
    """The record's rows (of one machine; acquired in [since, before) when given, as store.to_text);
    none, and nothing created, without a record."""
    if not (directory / STATE_DIR / RECORD_FILE).is_file():
        return []
    record = Record(directory)
    try:
        found = record.rows(machine)
    finally:
        record.close()
    return [r for r in found if (since or "") <= r.acquired and (before is None or r.acquired < before)]


def table_row(r: Row) -> dict[str, Any]:
    j = r.judgement
    tolerance = j.tolerance if j and j.tolerance else (None, None)
    action = j.action if j and j.action else (None, None)
    return {
        "machine": r.key.machine, "analysis": r.key.analysis, "metric": r.key.metric,
        "variant": r.key.variant, "acquired": r.acquired, "value": r.value, "unit": r.unit,
        "status": r.status, "level": j.level.value if j and j.level else None,
        "baseline": j.baseline if j else None, "tolerance_low": tolerance[0], "tolerance_high": tolerance[1],
        "action_low": action[0], "action_high": action[1], "drift": j.drift if j else None,
        "result_id": r.result_id, "report": r.report, "sources": json.dumps(r.sources, sort_keys=True),
    }  # fmt: skip


def point_name(r: Row) -> str:
    """`field-analysis flatness_vertical_percent (energy=6X FFF; fff=true)`."""
    variant = f" ({r.key.variant})" if r.key.variant else ""
    return f"{r.key.analysis} {r.key.metric}{variant}"


def to_csv(found: list[Row], target: Path) -> int:
    import pandas as pd

    frame = pd.DataFrame([table_row(r) for r in found], columns=list(CSV_COLUMNS))
    frame.to_csv(target, index=False)
    return len(frame)


def to_quaac(found: list[Row], directory: Path, target: Path, performer: str, email: str) -> int:
    """One data point per row; the PDF of each result attached once (QuAAC keeps attachments by hash)."""
    from quaac.attachments import Attachment
    from quaac.models import DataPoint, Document, Equipment, User

    user = User(name=performer, email=email)
    machines: dict[str, Any] = {}
    reports: dict[str, list[Any]] = {}
    points = []
    for r in found:
        machine = machines.setdefault(
            r.key.machine,
            Equipment(name=r.key.machine, type="linac", serial_number="", manufacturer="", model=""),
        )
        report = r.report or ""
        if report not in reports:
            pdf = directory / report
            reports[report] = (
                [Attachment.from_file(pdf, comment=r.result_id)] if report and pdf.is_file() else []
            )
        j = r.judgement
        points.append(
            DataPoint(
                name=point_name(r),
                perform_datetime=r.acquired,
                measurement_value=r.value,
                measurement_unit=r.unit,
                reference_value=j.baseline if j else None,
                description=f"level {j.level.value}" if j and j.level else "",
                performer=user,
                primary_equipment=machine,
                parameters={
                    "analysis": r.key.analysis,
                    "metric": r.key.metric,
                    "variant": r.key.variant,
                    "status": r.status,
                    "result": r.result_id,
                    "sources": r.sources,
                },
                attachments=reports[report],
            )
        )
    document = json.loads(Document(datapoints=points).model_dump_json(indent=1, by_alias=True))
    # quaac 1.0.2 cannot check its own document-level hash once a document holds two data points:
    # its reader gives the first user of a shared equipment, user or attachment the hash from the
    # file and the others none, and hashes the sets it builds from them in a per-process order. Each
    # data point, equipment, user and attachment keeps its hash, which that reader checks; the
    # document's is left out, as the reader allows.
    document.pop("hash", None)
    target.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return len(points)
