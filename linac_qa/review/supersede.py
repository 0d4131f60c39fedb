"""Supersession: a later acquisition of the same test (machine, analysis, variant) that passes
supersedes an earlier failure or error. Both stay in the trail; the failure is shown "repeated:
passed on ...". Derived from the entries, never stored, so it is the same however it is asked."""

from __future__ import annotations

from collections import defaultdict

from linac_qa.review.trail import Entry

FAILING = ("failed", "error")


def superseded_by(entries: list[Entry]) -> dict[str, Entry]:
    """Each failing result's id -> the first passing result of the same test acquired after it.
    A result without an acquisition time (an error before any was read) is followed by those
    recorded after it."""
    by_test: dict[tuple[str, str, str], list[Entry]] = defaultdict(list)
    for e in entries:
        by_test[(e.machine, e.analysis, e.variant)].append(e)
    found: dict[str, Entry] = {}
    for same in by_test.values():
        passes = sorted((e for e in same if e.status == "passed" and e.acquired), key=_when)
        for failure in (e for e in same if e.status in FAILING):
            later = next((p for p in passes if _when(p) > _when(failure)), None)
            if later is not None:
                found[failure.result_id] = later
    return found


def _when(e: Entry) -> str:
    return e.acquired or e.recorded
