"""Whole-token keyword matching (docs/design.md section 3).

pylinac's old watcher matched substrings, so `ct` matched "direct" and `tor` matched "monitor".
Here a text is cut at every non-alphanumeric character, then at lower-to-upper case and
letter/digit boundaries; a keyword matches a single token or a run of consecutive tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

_SEPARATORS = re.compile(r"[^0-9A-Za-z]+")
# lower->upper ("PicketFence"), acronym->word ("QAImage" -> "QA", "Image"), letter<->digit.
_SUBPIECES = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_FIELD_SIZE = re.compile(r"(?<![0-9.])(\d{1,2}(?:\.\d)?)\s*[xX×]\s*(\d{1,2}(?:\.\d)?)(?![0-9])")


@lru_cache(maxsize=4096)
def tokens(text: str) -> tuple[str, ...]:
    out: list[str] = []
    for piece in _SEPARATORS.split(text):
        out.extend(sub.lower() for sub in _SUBPIECES.findall(piece))
    return tuple(out)


@lru_cache(maxsize=1024)
def normalise(keyword: str) -> str:
    return "".join(_SEPARATORS.split(keyword)).lower()


def matches(keyword: str, toks: Sequence[str]) -> bool:
    """True when the keyword equals one token or the concatenation of consecutive tokens."""
    wanted = normalise(keyword)
    if not wanted:
        return False
    if len(toks) <= _FEW_TOKENS:
        return wanted in _runs(tuple(toks))
    return _in_consecutive(wanted, toks)


# A label or name has a handful of tokens: all their runs, kept once, make each of the forty-odd
# keyword tests one lookup. A long free text (a 10 kB comment) would have millions of runs: it is
# walked instead.
_FEW_TOKENS = 24


@lru_cache(maxsize=1024)
def _runs(toks: tuple[str, ...]) -> frozenset[str]:
    return frozenset("".join(toks[i:j]) for i in range(len(toks)) for j in range(i + 1, len(toks) + 1))


def _in_consecutive(wanted: str, toks: Sequence[str]) -> bool:
    for start in range(len(toks)):
        joined = ""
        for tok in toks[start:]:
            joined += tok
            if joined == wanted:
                return True
            if len(joined) >= len(wanted) or not wanted.startswith(joined):
                break
    return False


def best_match(texts: Iterable[str], candidates: Iterable[tuple[str, str]]) -> tuple[str, str] | None:
    """Among (section, keyword) candidates in config order, the one whose keyword matches any of
    the texts; the longest keyword wins, then the earlier section."""
    toks = [tokens(t) for t in texts if t]
    best: tuple[str, str] | None = None
    for section, keyword in candidates:
        if any(matches(keyword, t) for t in toks) and (
            best is None or len(normalise(keyword)) > len(normalise(best[1]))
        ):
            best = (section, keyword)
    return best


def any_match(keywords: Iterable[str], texts: Iterable[str]) -> bool:
    toks = [tokens(t) for t in texts if t]
    return any(matches(k, t) for k in keywords for t in toks)


def nominal_field_mm(texts: Iterable[str]) -> tuple[float, float] | None:
    """A `<W>x<H>` token in cm (e.g. `10x10`, `15 x 15`) as millimetres, from the first text that has one."""
    for text in texts:
        m = _FIELD_SIZE.search(text or "")
        if m:
            return float(m.group(1)) * 10, float(m.group(2)) * 10
    return None
