"""Versions recorded with every result (provenance), and what an `error` is retried after."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version


@cache
def linac_qa() -> str:
    try:
        return version("linac-qa-flows")
    except PackageNotFoundError:
        return "unknown"


@cache
def pylinac() -> str:
    return version("pylinac")


@dataclass(frozen=True)
class Provenance:
    """What produced a recorded result. None: not recorded (a ledger older than the field)."""

    linac_qa: str | None
    pylinac: str | None
    config_hash: str | None

    def changes_since(self, earlier: Provenance) -> list[str]:
        """What differs from `earlier`, worded for a reason: ["pylinac 3.48.0 -> 3.49.0"]."""
        named = (("linac-qa-flows", "linac_qa"), ("pylinac", "pylinac"), ("config", "config_hash"))
        return [
            f"{label} {getattr(earlier, attr) or 'unrecorded'} -> {getattr(self, attr)}"
            for label, attr in named
            if getattr(earlier, attr) != getattr(self, attr)
        ]


def current(config_hash: str) -> Provenance:
    return Provenance(linac_qa=linac_qa(), pylinac=pylinac(), config_hash=config_hash)
