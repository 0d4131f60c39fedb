"""The record rebuilt from the outputs' `.json` documents: a clinic upgrading sees its history at
once, and a deleted or damaged record is made again, row for row as the runs wrote it."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from linac_qa.history.record import Record, Row, rows_of
from linac_qa.model import AnalysisResult, MetricLevel, Status
from linac_qa.records.ledger import STATE_DIR
from linac_qa.records.outputs import display_path, is_temporary
from linac_qa.review.trail import Entry, Trail, entry_of


@dataclass
class Rebuilt:
    rows: int = 0
    documents: int = 0  # ours, read
    entries: int = 0  # results put in the review trail
    unreadable: list[str] = field(default_factory=list)  # ours by name, but not readable as ours


def rebuild(directory: Path, output_directory: Path | None = None) -> Rebuilt:
    """Every row again from the `.json` documents under DIR (and the output directory), replacing
    the record's rows; baselines are not touched (they are not in the outputs). Each result goes
    into the review trail as well (its row replaced, its reviews never touched: a back-filled result
    is not auto-reviewed, since nobody applied the rule when it was recorded)."""
    done = Rebuilt()
    rows: list[Row] = []
    entries: list[Entry] = []
    folders = [directory] + ([output_directory] if output_directory and output_directory != directory else [])
    for path in (p for folder in folders for p in documents(folder)):
        try:
            found = result_of_document(path, directory)
        except (OSError, ValueError, KeyError, TypeError, ValidationError):
            done.unreadable.append(display_path(path, directory))
            continue
        if found is None:
            continue
        done.documents += 1
        result, sources, analysed = found
        rows.extend(rows_of(result, sources))
        if (entry := entry_of(result, sources, analysed)) is not None:
            entries.append(entry)
    record = Record(directory)
    try:
        done.rows = record.replace_all(rows)
    finally:
        record.close()
    trail = Trail(directory)
    try:
        with trail.conn:  # one transaction: thousands of results in a moment
            trail.conn.execute("BEGIN")
            for entry in entries:
                trail.add(entry)
    finally:
        trail.close()
    done.entries = len(entries)
    return done


def documents(folder: Path) -> Iterator[Path]:
    """The `.json` files under a folder, outside the state folder (earlier outputs kept in its
    history are not results any more), links never followed."""
    for base, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d != STATE_DIR)
        for name in sorted(filenames):
            if name.endswith(".json") and not is_temporary(name):
                yield Path(base) / name


def result_of_document(
    path: Path, directory: Path
) -> tuple[AnalysisResult, dict[str, str], dt.datetime] | None:
    """The result one of our `.json` documents keeps, its sources' hashes and when it was analysed
    (else the document's modification time); None for a JSON file that is not ours."""
    data = json.loads(path.read_text(encoding="utf-8"))
    ours: dict[str, Any] | None = data.get("linac-qa-flows") if isinstance(data, dict) else None
    if not isinstance(ours, dict) or "metrics" not in ours:
        return None
    provenance = ours.get("provenance") or {}
    inputs = provenance.get("inputs") or {}
    sources = inputs.get("sha256") or {}
    if not sources and inputs.get("combined_sha256"):
        sources = {"combined_sha256": inputs["combined_sha256"]}
    pdf = path.with_name(path.name.removesuffix(".json") + ".pdf")
    result = AnalysisResult(
        analysis=ours["analysis"],
        model=ours.get("model"),
        files=sorted(sources) if "combined_sha256" not in sources else [],
        status=Status(ours["status"]),
        reason=ours.get("reason") or "",
        metrics=ours["metrics"],
        outputs=[display_path(pdf, directory), display_path(path, directory)],
        unit=ours.get("unit"),
        acquired=dt.datetime.fromisoformat(ours["acquired"]) if ours.get("acquired") else None,
        variant=ours.get("variant"),
        levels={m: MetricLevel.model_validate(j) for m, j in (ours.get("levels") or {}).items()},
        level=ours.get("level"),
        judged=bool(ours.get("judged")),
        warnings=ours.get("warnings") or [],
    )
    analysed = provenance.get("analysed")
    when = dt.datetime.fromisoformat(analysed) if analysed else _modified(path)
    return result, sources, when


def _modified(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
