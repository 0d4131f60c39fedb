"""The typed configuration: the models are the one source of defaults, a user's YAML overrides only
what it names, and every mistake is reported with the file, the line, the key and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from linac_qa.analyses import REGISTRY
from linac_qa.analyses.base import analyze_parameters, check_pylinac_type, to_pylinac_kwargs
from linac_qa.intake.routing import IGNORE, RoutingRule, rule_attributes
from linac_qa.notify.settings import EmailSettings
from linac_qa.sections import AnalysisSettings, Keyword, Section

# Keys that look like secrets (these words anywhere in the key: `smtp-password`, `access_token`) are
# refused wherever they appear, and their values never echoed: credentials belong in a Prefect block.
SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "api-key", "apikey"})
# What a hostile or mistaken file can cost before it is checked. A config is a few kilobytes; the
# longest real value is a path. Aliases are refused: nine lines of them expand to a billion strings.
MAX_YAML_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_TEXT = 4096
# libyaml when PyYAML has it: 50 times faster than the pure-Python parser.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# The unit is on every report, e-mail subject and Prefect artifact key.
Unit = Annotated[str, StringConstraints(max_length=64)]
# Section options that change no result, so not the config hash either (nor retry an error).
UNANALYSED = frozenset({"schedule", "window-days"})


class ExecutorSettings(Section):
    """Where the analyses run: worker processes on this machine, or an existing Dask cluster."""

    dask_address: str | None = None

    @field_validator("dask_address")
    @classmethod
    def _scheduler_address(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
            raise ValueError("must be a Dask scheduler address such as tcp://qa-server:8786, or null")
        return value


class GeneralSettings(Section):
    unit: Unit | None = None
    directory: Path | None = None
    sources: list[Path] = Field(default_factory=list)
    suffix: Annotated[str, StringConstraints(max_length=64)] = "_analysis"
    output_directory: Path | None = None
    avoid_keywords: list[Keyword] = Field(default_factory=list)
    rolling_window_days: float = Field(default=0, ge=0)
    settle_seconds: float = Field(default=30, ge=0)
    poll_seconds: float = Field(default=10, gt=0)
    workers: int | None = Field(default=None, ge=1)
    worker_max_analyses: int = Field(default=50, ge=1)
    analysis_timeout_seconds: float = Field(default=900, gt=0)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    group_wait_hours: float = Field(default=24, ge=0)
    # An RT image that no keyword names is routed by what its pixels show, when that is clear.
    recognise_by_content: bool = True
    # Zips are refused before anything is decompressed when they unpack to more than this, or
    # compress better than this in total (a zip bomb; DICOM images compress 2-4 times).
    zip_max_megabytes: float = Field(default=4096, gt=0)
    zip_max_ratio: float = Field(default=200, gt=1)

    @field_validator("suffix")
    @classmethod
    def _plain_suffix(cls, value: str) -> str:
        if not value or any(c in value for c in '/\\:*?"<>|') or value.strip() != value:
            raise ValueError("must be a non-empty file-name suffix without path separators or spaces")
        return value


class Settings(BaseModel):
    """The whole configuration. Analysis sections come from the registry, in its order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    general: GeneralSettings = Field(default_factory=GeneralSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    analyses: dict[str, AnalysisSettings] = Field(default_factory=dict)
    routing: tuple[RoutingRule, ...] = ()
    source: str = "defaults"  # where the config came from, for messages

    def section(self, name: str) -> AnalysisSettings:
        return self.analyses[name]

    def enabled_sections(self) -> list[str]:
        return [name for name, s in self.analyses.items() if s.enabled]

    @cached_property
    def keyword_candidates(self) -> tuple[tuple[str, str], ...]:
        """(section, keyword) in config order: the order breaks ties between equally long keywords."""
        return tuple((s, k) for s in self.enabled_sections() for k in self.section(s).keywords)

    @cached_property
    def rule_attributes(self) -> tuple[str, ...]:
        return rule_attributes(self.routing)

    def as_yaml_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "general": self.general.model_dump(mode="json", by_alias=True),
            "email": self.email.model_dump(mode="json", by_alias=True),
            "routing": [
                r.model_dump(mode="json", by_alias=True, exclude_defaults=True) for r in self.routing
            ],
        }
        for name, section in self.analyses.items():
            out[name] = section.model_dump(mode="json", by_alias=True)
        return out

    @property
    def hash(self) -> str:
        # Provenance of the analyses: who gets the e-mail, or how often a test is due, does not
        # change a result.
        analysed = {
            k: {o: x for o, x in v.items() if o not in UNANALYSED} if k in self.analyses else v
            for k, v in self.as_yaml_dict().items()
            if k != "email"
        }
        canonical = json.dumps(analysed, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class ConfigError(Exception):
    """A configuration mistake, worded for the person who has to fix the file."""

    def __init__(self, source: str, key: str, message: str, line: int | None = None):
        self.source, self.key, self.line = source, key, line
        where = f"{source}, line {line}" if line else source
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


def default_sections() -> dict[str, type[AnalysisSettings]]:
    return {name: analysis.settings_model for name, analysis in REGISTRY.items()}


def load_settings(
    path: str | os.PathLike[str] | None = None, *, text: str | None = None, source: str | None = None
) -> Settings:
    """Defaults, overridden by the YAML file (or text) when given. `source` names the YAML in
    messages (a machine-config block: "block 'truebeam1'"); by default the path."""
    if path is None and text is None:
        return build_settings({}, "defaults", {})
    source = source or (str(path) if path is not None else "<config>")
    if text is None:
        assert path is not None  # one of the two was given
        text = read_config_file(path, source)
    raw, lines = parse_yaml(text, source)
    # Relative paths in a file are relative to the file's folder, wherever the run starts from.
    base = Path(path).expanduser().resolve().parent if path is not None else None
    return build_settings(raw, source, lines, base)


def read_config_file(path: str | os.PathLike[str], source: str) -> str:
    """A YAML file's text; a missing, unreadable or oversized file is a ConfigError naming it."""
    try:
        with Path(path).open("rb") as fp:
            data = fp.read(MAX_YAML_BYTES + 1)  # a device or a huge file costs no more than this
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(source, "", f"cannot be read: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, "", f"not UTF-8 text (byte {exc.start}): not a config file") from None


Fail = Callable[[tuple[str | int, ...], str], ConfigError]


def failer(source: str, lines: dict[tuple[str, ...], int]) -> Fail:
    """A ConfigError at a key path, with the line of the key (or of its nearest parent)."""

    def fail(path: tuple[str | int, ...], message: str) -> ConfigError:
        keys = tuple(str(p) for p in path)
        line = next((lines[keys[:i]] for i in range(len(keys), 0, -1) if keys[:i] in lines), None)
        return ConfigError(source, ".".join(_short(k, 64) for k in keys), message, line)

    return fail


def parse_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """The YAML as a dict, and the line of every key (for messages). Refused before any of it is
    used: files over MAX_YAML_BYTES, aliases, nesting deeper than MAX_DEPTH, strings longer than
    MAX_TEXT, and secrets at any depth."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(source, "", f"larger than {MAX_YAML_BYTES >> 20} MB: not a config file")
    try:
        _check_events(text, source)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, "", f"not valid YAML: {problem}", mark.line + 1 if mark else None) from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(source, "", "must be a mapping of sections (general:, picket-fence:, ...)", 1)
    lines: dict[tuple[str, ...], int] = {}
    _key_lines(node, (), lines)
    _check_values(data, (), failer(source, lines))
    return data, lines


def _check_events(text: str, source: str) -> None:
    """Aliases and deep nesting, from the parser's events: before anything is built from them."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        line = event.start_mark.line + 1 if event.start_mark else None
        if isinstance(event, yaml.AliasEvent):
            alias = _short(str(event.anchor), 40)
            raise ConfigError(
                source, "", f"YAML aliases (*{alias}) are not supported: write the value out", line
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(source, "", f"nested deeper than {MAX_DEPTH} levels", line)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _key_lines(node: yaml.Node | None, prefix: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, str(key_node.value))
            out[path] = key_node.start_mark.line + 1
            _key_lines(value_node, path, out)
    elif isinstance(node, yaml.SequenceNode):  # list items by index, e.g. machines.0.cron
        for index, item in enumerate(node.value):
            path = (*prefix, str(index))
            out[path] = item.start_mark.line + 1
            _key_lines(item, path, out)


def _check_values(node: Any, path: tuple[str, ...], fail: Fail) -> None:
    """Secret-looking keys and over-long strings, in mappings and lists at any depth. A secret's
    value is never part of the message."""
    if isinstance(node, str) and len(node) > MAX_TEXT:
        raise fail(path, f"too long ({len(node)} characters); at most {MAX_TEXT} characters")
    if isinstance(node, list):
        for index, item in enumerate(node):
            _check_values(item, (*path, str(index)), fail)
    elif isinstance(node, dict):
        for name, value in node.items():
            key = str(name)
            if len(key) > MAX_TEXT:
                raise fail((*path, key), f"key too long ({len(key)} characters); at most {MAX_TEXT}")
            if any(word in key.lower().replace("_", "-") for word in SECRET_KEYS):
                raise fail(
                    (*path, key),
                    "secrets do not belong in a config file; store them in a Prefect block "
                    "(python -m blocks.setup email ...) and name the block",
                )
            _check_values(value, (*path, key), fail)


def shown(value: object, limit: int = 60) -> str:
    """A value for an error message: its repr, cut short."""
    return _short(repr(value), limit)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def build_settings(
    raw: dict[str, Any], source: str, lines: dict[tuple[str, ...], int], base: Path | None = None
) -> Settings:
    fail = failer(source, lines)
    sections = default_sections()
    known = ["general", "email", "routing", *sections]
    for key in raw:
        if key not in known:
            raise fail((key,), f"unknown section; allowed: {', '.join(known)}")
        if key == "routing":
            if raw[key] is not None and not isinstance(raw[key], list):
                raise fail((key,), "must be a list of rules (- path: ..., analysis: ...)")
        elif raw[key] is not None and not isinstance(raw[key], dict):
            raise fail((key,), "must be a mapping of options")

    general = _validate(GeneralSettings, raw.get("general") or {}, ("general",), fail)
    general = _resolve_paths(general, base, fail)
    email = _validate(EmailSettings, raw.get("email") or {}, ("email",), fail)
    if problems := email.problems():
        key, message = problems[0]
        raise fail(("email", key), message)
    analyses: dict[str, AnalysisSettings] = {}
    for name, model in sections.items():
        defaults = model().model_dump(by_alias=True)
        given = raw.get(name) or {}
        # `keywords` and list options replace the defaults; mappings (analysis:, tolerances:) merge.
        section = _validate(model, deep_merge(defaults, given), (name,), fail)
        check_pylinac_keywords(name, section, fail)
        analyses[name] = section
    routing = _routing_rules(raw.get("routing") or [], analyses, fail)
    return Settings(general=general, email=email, analyses=analyses, routing=routing, source=source)


def _routing_rules(
    raw: list[Any], analyses: dict[str, AnalysisSettings], fail: Any
) -> tuple[RoutingRule, ...]:
    rules = []
    for index, item in enumerate(raw):
        where = ("routing", str(index))
        if not isinstance(item, dict):
            raise fail(where, "must be a rule with path: and/or dicom:, and analysis:")
        rule = _validate(RoutingRule, item, where, fail)
        enabled = [name for name, section in analyses.items() if section.enabled]
        if rule.analysis != IGNORE and rule.analysis not in enabled:
            raise fail(
                (*where, "analysis"),
                f"{rule.analysis!r} is not an enabled section; allowed: {', '.join([*enabled, IGNORE])}",
            )
        if rule.variant:
            try:
                checked = (
                    REGISTRY[rule.analysis].check_variant(rule.variant) if rule.analysis != IGNORE else None
                )
            except ValueError as exc:
                raise fail((*where, "variant"), str(exc)) from None
            if checked is None:
                raise fail((*where, "variant"), "a rule that ignores files takes no variant")
            rule = rule.model_copy(update={"variant": checked})
        rules.append(rule)
    return tuple(rules)


def _validate(model: type[Section], data: dict[str, Any], prefix: tuple[str, ...], fail: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = (*prefix, *err["loc"])
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, tuple(str(p) for p in err["loc"][:-1]))
            raise fail(loc, f"unknown key; allowed: {', '.join(allowed)}") from None
        if err["type"] == "missing":
            raise fail(loc, "required") from None
        raise fail(
            loc, f"{err['msg'].removeprefix('Value error, ')} (got {shown(err.get('input'))})"
        ) from None


def _allowed_keys(model: type[BaseModel], path: tuple[str, ...]) -> list[str]:
    current: Any = model
    for part in path:
        field = next((f for n, f in current.model_fields.items() if part in (n, f.alias)), None)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    return [f.alias or n for n, f in current.model_fields.items()]


def check_pylinac_keywords(
    name: str, section: AnalysisSettings, fail: Any, *, even_the_defaults: bool = False
) -> None:
    """`analysis:` goes to pylinac's analyze() as is, so its keys and enum names are checked now.
    Our own defaults are checked by a test instead, so that a config that keeps them does not
    import pylinac (seconds of CPU) in a process that analyses nothing itself."""
    default = type(section).model_fields["analysis"].get_default(call_default_factory=True)
    if section.analysis == default and not even_the_defaults:
        return
    classes = REGISTRY[name].classes_for(section)
    params = analyze_parameters(classes)
    reserved = section.reserved_analysis_keys
    for key in section.analysis:
        if key in reserved:
            raise fail((name, "analysis", key), f"is set per acquisition ({reserved[key]}); remove it")
        if key not in params:
            allowed = ", ".join(k for k in params if k not in reserved)
            owner = "/".join(c.__name__ for c in classes)
            raise fail(
                (name, "analysis", key), f"{owner}.analyze() takes no such keyword; allowed: {allowed}"
            )
        try:
            for cls in classes:
                for given, value in to_pylinac_kwargs(cls.analyze, {key: section.analysis[key]}).items():
                    check_pylinac_type(cls.analyze, given, value)
        except ValueError as exc:
            raise fail((name, "analysis", key), str(exc)) from None


def _resolve_paths(general: GeneralSettings, base: Path | None, fail: Any) -> GeneralSettings:
    """`directory` and `output-directory` made absolute (relative to the config file's folder) and
    checked now, not half-way through a run.

    `directory` need not exist yet: a network share may be unmounted when the config is loaded
    (or checked on another host); the run says "directory not found ... (network share not
    mounted?)" and exits 2 before any work. What does exist must be a folder, not a file.
    `output-directory` is created by the run, so only its nearest existing parent is checked: it
    must be a folder (a file there would make every acquisition an error)."""
    resolved: dict[str, Any] = {}
    for field, key in (("directory", "directory"), ("output_directory", "output-directory")):
        value: Path | None = getattr(general, field)
        if value is None:
            continue
        path = _absolute(value, base, ("general", key), fail)
        blocker = _not_a_folder(path)
        if blocker is not None:
            verb = "be created" if key == "output-directory" else "exist"
            what = "is a file, not a folder" if blocker == path else f"cannot {verb}: {blocker} is a file"
            raise fail(("general", key), f"{path} {what}")
        resolved[field] = path
    # A source that is missing now (an unmounted share) is a warning in each run, not an error here.
    sources = [
        _absolute(s, base, ("general", "sources", str(i)), fail) for i, s in enumerate(general.sources)
    ]
    names: dict[str, int] = {}
    for i, source in enumerate(sources):
        # Copies go to DIR/<source folder name>/, so two sources must not share a name.
        if (other := names.get(source.name.lower())) is not None:
            raise fail(
                ("general", "sources", str(i)),
                f"{source}: another source is also named {source.name!r} (item {other}); "
                "copies go to DIR/<folder name>/, so source folder names must differ",
            )
        names[source.name.lower()] = i
    if sources:
        resolved["sources"] = sources
    return general.model_copy(update=resolved) if resolved else general


def _absolute(value: Path, base: Path | None, key: tuple[str, ...], fail: Any) -> Path:
    path = value.expanduser()
    if not path.is_absolute():
        if base is None:
            raise fail(
                key,
                f"{value} is a relative path, and this config has no file to be relative to; "
                "give an absolute path",
            )
        path = base / path
    return Path(os.path.normpath(path))


def _not_a_folder(path: Path) -> Path | None:
    """The nearest existing one of `path` and its parents when it is not a folder, else None."""
    for candidate in (path, *path.parents):
        try:
            if candidate.exists():
                return None if candidate.is_dir() else candidate
        except OSError:  # an unreachable share: nothing to check now; the run will say so
            return None
    return None
