"""Versions recorded with every result (provenance)."""

from __future__ import annotations

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
