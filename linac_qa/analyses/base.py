"""What an analysis type is. Each module in this package defines one and registers it in
`linac_qa.analyses.REGISTRY`; nothing else in the project names a modality.

The verbs follow pylinac's own: `load` builds the pylinac object, `analyze_kwargs` says what its
`analyze()` gets, `judge` turns the analysed object into a verdict with numbers, `save_image` writes
the analysed image. `linac_qa.execution.runner` does the rest (outputs, provenance, errors) once for all.

Every `judge` first checks that the analysis found what it must (`criteria.require_plausible`),
then builds its verdict with `criteria.judge`, which never skips a configured criterion silently.
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import io
import json
import re
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Generic, TypeVar

from linac_qa.analyses.criteria import Verdict
from linac_qa.model import Acquisition, AnalysisResult, ClassifiedFile
from linac_qa.sections import AnalysisSettings

VariantChecks = dict[str, Callable[[Any], Any]]


class Grouping(StrEnum):
    SINGLE = "single"  # one image is one acquisition
    SESSION = "session"  # a folder, zip, or series of images is one acquisition (Winston-Lutz)


@dataclass(frozen=True)
class Claim:
    """A file that is not DICOM, recognised by what it holds: why, and what that says of its variant."""

    reason: str
    variant: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupContext:
    directory: Path
    unit: str | None
    wait_seconds: float  # how long an incomplete group is held back before it is an error
    now: float  # time.time() of this run
    # Folders in which a file is still being written: a set (a CT series, a Winston-Lutz folder)
    # there may still be growing, so it waits for a later run.
    busy_folders: frozenset[str] = frozenset()

    def still_waiting(self, rel_paths: list[str]) -> bool:
        """True while the newest file of an incomplete group is younger than the wait."""
        newest = max((self.directory / p).stat().st_mtime for p in rel_paths)
        return self.now - newest < self.wait_seconds


@dataclass
class Grouped:
    acquisitions: list[Acquisition] = field(default_factory=list)
    decided: list[AnalysisResult] = field(default_factory=list)
    waiting: int = 0  # files held back until their partners arrive


@dataclass
class Inputs:
    """The acquisition's files on disk, ready for pylinac: zips are already extracted."""

    paths: list[Path]
    zip_path: Path | None = None  # the original zip, for pylinac's from_zip constructors
    extracted_to: Path | None = None  # the temporary folder the zip's members are in

    @property
    def single(self) -> Path:
        if len(self.paths) != 1:
            raise ValueError(f"expected one input file, got {len(self.paths)}")
        return self.paths[0]


S = TypeVar("S", bound=AnalysisSettings)


class AnalysisType(ABC, Generic[S]):
    """One modality, in the three phases of a run, each hook with a default most types keep:

    - recognise (classification): which files are this type's: their DICOM `modalities`, plain
      images (`accepts_images`), files known by what they hold (`claims`), and the options a file
      names (`variant`; a routing rule's, checked by `check_variant` when the config is loaded);
    - group (planning): which files make one acquisition: `grouping` (one image, or a session of
      images within `session_window`), or a whole `group` of the type's own, with `partners` it
      takes from files that nothing names; `check_group` says why a group cannot be analysed;
    - analyse (in a worker): `load` the pylinac object, `run` its analysis (`analyze_kwargs`),
      `judge` it, write its report (`write_report`, `save_image`) and results.

    `S`: the type's settings (its config section), which every hook that takes settings gets.
    """

    section: ClassVar[str]  # config section and the `analysis` name in the summary
    settings_model: type[S]

    # ------------------------------------------------------------------ recognise
    modalities: ClassVar[frozenset[str | None]] = frozenset({"RTIMAGE"})  # DICOM Modality accepted
    accepts_images: ClassVar[bool] = True  # plain image files (TIFF film scans and the like)
    # DICOM modalities that belong here even without a keyword (a CT series is a phantom scan).
    claims_modalities: ClassVar[frozenset[str]] = frozenset()
    # What a routing rule may set per acquisition (its `variant:`), each with the check of its value.
    variant_options: ClassVar[VariantChecks] = {}

    def claims(self, path: Path, head: bytes) -> Claim | None:
        """Recognise a file that is not DICOM by its content (machine logs, Profiler data)."""
        return None

    def variant(self, file: ClassifiedFile, settings: S) -> dict[str, Any]:
        """Per-acquisition variants read from keywords or tokens (FFF, film, nominal size)."""
        return {}

    def check_variant(self, options: dict[str, Any]) -> dict[str, Any]:
        """A routing rule's `variant:`, checked when the config is loaded. Raises ValueError."""
        out = {}
        for key, value in options.items():
            name = key.replace("-", "_")
            check = self.variant_options.get(name)
            if check is None:
                allowed = ", ".join(k.replace("_", "-") for k in self.variant_options) or "none"
                raise ValueError(f"{self.section} takes no variant {key!r}; allowed: {allowed}")
            out[name] = check(value)
        return out

    # ------------------------------------------------------------------ group
    grouping: ClassVar[Grouping] = Grouping.SINGLE

    def partners(self, own: list[ClassifiedFile], spare: list[ClassifiedFile]) -> list[ClassifiedFile]:
        """Files that nothing names (`by_content`) that belong with this type's own files, as this
        type's: the open image of a VMAT test. Called before grouping."""
        return []

    def session_window(self, settings: S) -> dt.timedelta:
        """How far apart loose images of one session may be taken."""
        return dt.timedelta(minutes=30)

    def group(self, files: list[ClassifiedFile], settings: S, ctx: GroupContext) -> Grouped | None:
        """This type's own grouping of its files, or None for the one named by `grouping`."""
        return None

    def check_group(self, acq: Acquisition, settings: S) -> str | None:
        """A reason why this group cannot be analysed as it is, or None."""
        images = acq.variant.get("images", len(acq.files))
        if images != 1:
            return f"{self.section} analyses one image per acquisition; found {images}"
        return None

    # ------------------------------------------------------------------ analyse
    # Which pylinac classes a config's `analysis:` keys are checked against, by name ("vmat.DRCS"):
    # pylinac is imported only where it is used (`from_pylinac`).
    pylinac_names: ClassVar[tuple[str, ...]]
    # The method with which pylinac's publish_pdf() draws the analysed image into the report: the
    # PNG is then that very picture, kept as it is drawn rather than drawn a second time (a picket
    # fence takes 1.5 s to draw). None: the PNG is drawn on its own, by save_image().
    report_image_method: ClassVar[str | None] = None

    def pylinac_name(self, acq: Acquisition, settings: S) -> str:
        """The pylinac class this acquisition is analysed with (a phantom model, a VMAT test...)."""
        return self.pylinac_names[0]

    def pylinac_class(self, acq: Acquisition, settings: S) -> Any:
        return from_pylinac(self.pylinac_name(acq, settings))

    def model_name(self, acq: Acquisition, settings: S) -> str:
        """The pylinac class used, for the summary's `model`."""
        return self.pylinac_name(acq, settings).rsplit(".", 1)[-1]

    def classes_for(self, settings: S) -> tuple[Any, ...]:
        """The pylinac classes this config can route to, whose analyze() takes `analysis:`."""
        return tuple(from_pylinac(name) for name in self.pylinac_names)

    @abstractmethod
    def load(self, inputs: Inputs, acq: Acquisition, settings: S) -> Any: ...

    def analyze_kwargs(self, acq: Acquisition, settings: S) -> dict[str, Any]:
        return to_pylinac_kwargs(self.pylinac_class(acq, settings).analyze, settings.analysis)

    def run(self, analysed: Any, acq: Acquisition, settings: S) -> None:
        analysed.analyze(**self.analyze_kwargs(acq, settings))

    @abstractmethod
    def judge(self, analysed: Any, acq: Acquisition, settings: S) -> Verdict:
        """The verdict; raises `criteria.Implausible` when the analysis did not find what it must."""

    def results_text(self, analysed: Any) -> str:
        return str(analysed.results())

    def results_json(self, analysed: Any) -> Any:
        data = results_data(analysed)
        dump = getattr(data, "model_dump_json", None)  # what results_data(as_json=True) returns
        return json.loads(dump() if dump is not None else analysed.results_data(as_json=True))

    def save_image(self, analysed: Any, path: Path) -> None:
        analysed.save_analyzed_image(str(path))

    def write_report(self, analysed: Any, pdf: BinaryIO, png: Path) -> None:
        """pylinac's own PDF report (publish_pdf, into `pdf`) and the PNG of the analysed image. The
        verdict and provenance go on a page of ours (records.report_page), not over pylinac's."""
        drawn: list[bytes] = []
        with _keeping_drawn_png(analysed, self.report_image_method, drawn):
            analysed.publish_pdf(pdf)
        close_figures()
        if drawn:
            png.write_bytes(drawn[0])
        else:  # the report did not draw it through that method (another pylinac release): draw it
            self.save_image(analysed, png)
            close_figures()


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@contextmanager
def _keeping_drawn_png(analysed: Any, method: str | None, drawn: list[bytes]) -> Iterator[None]:
    """While the block runs, the first PNG that `analysed.<method>` draws into a stream (as
    publish_pdf does for its pictures) is appended to `drawn`; the method itself is unchanged."""
    if method is None:
        yield
        return
    original = getattr(analysed, method)

    def draw_and_keep(target: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(target, *args, **kwargs)
        if not drawn and isinstance(target, io.BytesIO) and target.getvalue().startswith(PNG_SIGNATURE):
            drawn.append(target.getvalue())
        return result

    setattr(analysed, method, draw_and_keep)  # on the instance: the class's method is untouched
    try:
        yield
    finally:
        delattr(analysed, method)


def close_figures() -> None:
    import matplotlib.pyplot as plt

    plt.close("all")


# pylinac builds its results afresh on every results_data() call (a picket fence recomputes every
# leaf's error: 0.2-0.4 s); the verdict and the `.json` are made from one build of them.
_RESULTS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def results_data(analysed: Any) -> Any:
    """`analysed.results_data()`, built once per analysed object."""
    try:
        return _RESULTS[analysed]
    except KeyError:
        data = _RESULTS[analysed] = analysed.results_data()
        return data
    except TypeError:  # an object that cannot be weakly referenced: build it each time
        return analysed.results_data()


def mtf_at(mtf_lp_mm: Any, percent: int) -> float | None:
    """The resolution (lp/mm) at `percent` relative MTF, from pylinac's `mtf_lp_mm`: a dict
    {percent: lp/mm} for CT phantoms, a list of one-key dicts for planar phantoms (pylinac 3.49)."""
    entries = mtf_lp_mm if isinstance(mtf_lp_mm, list) else [mtf_lp_mm or {}]
    for entry in entries:
        if isinstance(entry, dict) and entry.get(percent) is not None:
            return float(entry[percent])
    return None


def to_pylinac_kwargs(func: Any, given: dict[str, Any]) -> dict[str, Any]:
    """Turn config values into what pylinac's analyze() takes: enum names to enum members
    (`protocol: VARIAN`), lists to tuples where the default is a tuple."""
    params = inspect.signature(func).parameters
    out: dict[str, Any] = {}
    for key, value in given.items():
        if key not in params:
            continue  # meant for another of the section's classes (checked against all at load time)
        default = params[key].default
        if isinstance(default, enum.Enum) and isinstance(value, str):
            value = enum_member(type(default), value)
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        out[key] = value
    return out


def check_pylinac_type(func: Any, key: str, value: Any) -> None:
    """Raises ValueError when `value` (as `to_pylinac_kwargs` passes it) is not of the type that
    pylinac's signature annotates for `key`: `tolerance: "1 mm"` is a config error, found when the
    config is loaded, not an error of every acquisition. Types no YAML value can be are not judged."""
    import typing

    from pydantic import ConfigDict, TypeAdapter, ValidationError
    from pydantic.errors import PydanticSchemaGenerationError

    try:
        hint = typing.get_type_hints(func).get(key)
    except Exception:  # an annotation pylinac's own module cannot resolve: nothing to check against
        return
    if hint is None:
        return
    if isinstance(value, list) and "tuple" in str(hint):
        value = tuple(value)
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True))
    except (PydanticSchemaGenerationError, TypeError):
        return
    try:
        adapter.validate_python(value, strict=True)
    except ValidationError:
        raise ValueError(f"must be {_type_name(hint)} (got {value!r})") from None


def _type_name(hint: Any) -> str:
    """`float`, `float | None`, `tuple[float, float]`: as a person writes it."""
    if isinstance(hint, type) and not getattr(hint, "__args__", None):
        return hint.__name__
    text = re.sub(r"<(?:class|enum) '([\w.]+)'>", r"\1", str(hint))
    text = re.sub(r"typing\.Union\[(.*)\]", lambda m: m.group(1).replace(", ", " | "), text)
    return re.sub(r"\b(?:[a-z_]\w*\.)+(\w+)", r"\1", text)


def strict_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false (got {value!r})")
    return value


def from_pylinac(name: str) -> Any:
    """A class (or enum) of pylinac's by its name under the package ("PicketFence", "vmat.DRCS").
    pylinac is imported here, at its first use: its import costs seconds of CPU, which the main
    process of every run would spend though only its workers analyse (and a run that finds nothing
    new, none)."""
    import pylinac

    found: Any = pylinac
    for part in name.split("."):
        found = getattr(found, part)
    return found


def one_of(allowed: Iterable[str]) -> Callable[[Any], str]:
    names = tuple(allowed)

    def check(value: Any) -> str:
        if value not in names:
            raise ValueError(f"{value!r} is not one of {', '.join(names)}")
        return str(value)

    return check


def enum_member(enum_type: type[enum.Enum], name: str) -> enum.Enum:
    wanted = name.strip().lower().replace(" ", "_").replace("-", "_")
    for member in enum_type:
        value = member.value if isinstance(member.value, str) else member.name
        if wanted in (member.name.lower(), str(value).lower().replace(" ", "_")):
            return member
    allowed = ", ".join(m.name for m in enum_type)
    raise ValueError(f"{name!r} is not one of {allowed}")


def analyze_parameters(classes: tuple[Any, ...]) -> dict[str, inspect.Parameter]:
    """The named keywords that some class's analyze() takes (what `analysis:` may hold). Where a
    section routes to several classes (CatPhan and ACR models), each gets only the keys it takes."""
    known: dict[str, inspect.Parameter] = {}
    for cls in classes:
        for name, p in inspect.signature(cls.analyze).parameters.items():
            if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                known.setdefault(name, p)
    return known
