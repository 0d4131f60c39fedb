"""Which analysis a file belongs to, from what names it: explicit routing rules first, then keywords.

Real exports name their test in many places. Keywords (whole tokens, `linac_qa.intake.keywords`) are looked
for in tiers, most specific first, and the first tier with a match decides:
1. the file name and the DICOM labels that name an acquisition (docs/design.md section 3; the longest
   keyword wins across them);
2. the folder names between DIR and the file, nearest first (`Picket Fence/`, `WL_2_2022/`);
3. the QA patient's name and ID, and plan and beam names (`LUTZ^WINSTON`).
A file's own name outranks its folder, and its folder outranks the QA patient, who may hold every
test of a month. The reason says where the keyword was found.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydicom.datadict import tag_for_keyword

from linac_qa.intake.keywords import best_match, matches, normalise, tokens
from linac_qa.model import DicomHeader
from linac_qa.sections import Section

IGNORE = "ignore"  # a rule's `analysis` that marks files as not QA data


class RoutingRule(Section):
    """`routing:` in the config: checked before keywords, the first rule that matches wins. A rule
    matches when every condition it gives holds."""

    path: str | None = Field(default=None, min_length=1)  # wildcards on the path relative to DIR
    dicom: dict[str, str] = Field(default_factory=dict)  # DICOM keyword -> regular expression
    analysis: str  # a section name, or `ignore`
    variant: dict[str, Any] = Field(default_factory=dict)  # e.g. {mlc: HD Millennium}, {fff: true}

    @field_validator("dicom")
    @classmethod
    def _attributes(cls, value: dict[str, str]) -> dict[str, str]:
        for keyword, pattern in value.items():
            if tag_for_keyword(keyword) is None:
                raise ValueError(
                    f"{keyword!r} is not a DICOM attribute keyword (e.g. PatientID, RTImageLabel)"
                )
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{keyword}: {pattern!r} is not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _has_condition(self) -> RoutingRule:
        if self.path is None and not self.dicom:
            raise ValueError("a rule needs `path` (wildcards on the path under DIR) or `dicom` (attributes)")
        return self

    def matches(self, rel_path: str, header: DicomHeader | None) -> bool:
        if self.path is not None and not _glob(self.path)(rel_path.lower()):
            return False
        for keyword, pattern in self.dicom.items():
            value = header.attributes.get(keyword) if header else None
            if value is None or not _regex(pattern).search(value):
                return False
        return True

    def describe(self, index: int) -> str:
        conditions = ([f"path {self.path!r}"] if self.path else []) + [
            f"{k} ~ {v!r}" for k, v in self.dicom.items()
        ]
        return f"routing rule {index + 1} ({', '.join(conditions)})"


@lru_cache(maxsize=256)
def _glob(pattern: str) -> Any:
    # Case-insensitive, as on the Windows shares most clinics export to; `*` also crosses folders.
    return re.compile(fnmatch.translate(pattern.lower().replace("\\", "/"))).match


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def rule_attributes(rules: Iterable[RoutingRule]) -> tuple[str, ...]:
    """The DICOM attributes the rules look at: read with the header."""
    return tuple(dict.fromkeys(k for r in rules for k in r.dicom))


@dataclass(frozen=True)
class Route:
    section: str
    keyword: str | None
    where: (
        str  # "the name", "the folder name 'TorTest'", "PatientName 'LUTZ^WINSTON'", "routing rule 2 (...)"
    )
    variant: tuple[tuple[str, Any], ...] = ()

    @property
    def reason(self) -> str:
        return f"'{self.keyword}' in {self.where}" if self.keyword else self.where


def first_rule(rules: Sequence[RoutingRule], rel_path: str, header: DicomHeader | None) -> Route | None:
    for index, rule in enumerate(rules):
        if rule.matches(rel_path, header):
            return Route(rule.analysis, None, rule.describe(index), tuple(rule.variant.items()))
    return None


def by_keywords(
    candidates: tuple[tuple[str, str], ...],
    rel_path: str,
    header: DicomHeader | None,
    *,
    labels: Sequence[str] = (),
) -> Route | None:
    """The keyword route through the tiers above. `labels` are extra texts of the first tier (the
    member names of a zip)."""
    path = PurePosixPath(rel_path)
    texts = header.texts if header else ()
    name = bare_name(path.name)
    first = best_of(candidates, [name, *map(bare_name, labels), *texts])
    if first is not None:
        section, keyword = first
        return Route(section, keyword, "the name" if matches(keyword, tokens(name)) else "the DICOM labels")
    for folder in reversed(path.parent.parts):
        found = best_of(candidates, [folder])
        if found is not None:
            return Route(found[0], found[1], f"the folder name '{folder}'")
    for tag, value in header.patient_texts if header else ():
        found = best_of(candidates, [value])
        if found is not None:
            return Route(found[0], found[1], f"{tag} '{value}'")
    return None


def best_of(candidates: tuple[tuple[str, str], ...], texts: Iterable[str]) -> tuple[str, str] | None:
    """`best_match` over the texts, one text at a time: the best candidate over several texts is the
    best of each text's best, and a text's best is remembered, so the labels and folders that a
    whole CT series shares are matched once, not once per file."""
    found = {_best_for_text(t, candidates) for t in texts if t}
    # best_match's own rule: the longest keyword, then the earliest in config order (max keeps the first).
    ranked = [c for c in candidates if c in found]
    return max(ranked, key=lambda c: len(normalise(c[1]))) if ranked else None


def bare_name(name: str) -> str:
    """A file name without its extension (`.dcm` is no part of what the name says)."""
    stem, dot, ext = name.rpartition(".")
    return stem if dot and stem and ext.isalnum() and len(ext) <= 5 else name


@lru_cache(maxsize=16384)
def _best_for_text(text: str, candidates: tuple[tuple[str, str], ...]) -> tuple[str, str] | None:
    return best_match([text], candidates)
