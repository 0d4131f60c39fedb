"""The typed configuration: the models are the one source of defaults, a user's YAML overrides only
what it names, and every mistake is reported with the file, the line, the key and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from linac_qa.analyses import REGISTRY
from linac_qa.analyses.base import analyze_parameters, to_pylinac_kwargs
from linac_qa.sections import AnalysisSettings, Section

# Keys that look like secrets are refused wherever they appear: credentials belong in a Prefect block.
SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "api-key", "apikey"})


class GeneralSettings(Section):
    unit: str | None = None
    directory: Path | None = None
    suffix: str = "_analysis"
    output_directory: Path | None = None
    avoid_keywords: list[str] = Field(default_factory=list)
    rolling_window_days: float = Field(default=0, ge=0)
    settle_seconds: float = Field(default=30, ge=0)
    workers: int | None = Field(default=None, ge=1)
    analysis_timeout_seconds: float = Field(default=900, gt=0)

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
    analyses: dict[str, AnalysisSettings] = Field(default_factory=dict)
    source: str = "defaults"  # where the config came from, for messages

    def section(self, name: str) -> AnalysisSettings:
        return self.analyses[name]

    def enabled_sections(self) -> list[str]:
        return [name for name, s in self.analyses.items() if s.enabled]

    def as_yaml_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"general": self.general.model_dump(mode="json", by_alias=True)}
        for name, section in self.analyses.items():
            out[name] = section.model_dump(mode="json", by_alias=True)
        return out

    @property
    def hash(self) -> str:
        canonical = json.dumps(self.as_yaml_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class ConfigError(Exception):
    """A configuration mistake, worded for the person who has to fix the file."""

    def __init__(self, source: str, key: str, message: str, line: int | None = None):
        self.source, self.key, self.line = source, key, line
        where = f"{source}, line {line}" if line else source
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


def default_sections() -> dict[str, type[AnalysisSettings]]:
    return {name: analysis.settings_model for name, analysis in REGISTRY.items()}


def load_settings(path: str | os.PathLike[str] | None = None, *, text: str | None = None) -> Settings:
    """Defaults, overridden by the YAML file (or text) when given."""
    if path is None and text is None:
        return build_settings({}, "defaults", {})
    source = str(path) if path is not None else "<config>"
    if text is None:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(source, "", "file not found") from None
        except OSError as exc:
            raise ConfigError(source, "", f"cannot be read: {exc.strerror}") from None
    raw, lines = parse_yaml(text, source)
    return build_settings(raw, source, lines)


def parse_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """The YAML as a dict, and the line of every key (for messages)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
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
    return data, lines


def _key_lines(node: yaml.Node | None, prefix: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, str(key_node.value))
            out[path] = key_node.start_mark.line + 1
            _key_lines(value_node, path, out)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def build_settings(raw: dict[str, Any], source: str, lines: dict[tuple[str, ...], int]) -> Settings:
    def fail(path: tuple[str | int, ...], message: str) -> ConfigError:
        keys = tuple(str(p) for p in path)
        line = next((lines[keys[:i]] for i in range(len(keys), 0, -1) if keys[:i] in lines), None)
        return ConfigError(source, ".".join(keys), message, line)

    _refuse_secrets(raw, (), fail)
    sections = default_sections()
    known = ["general", *sections]
    for key in raw:
        if key not in known:
            raise fail((key,), f"unknown section; allowed: {', '.join(known)}")
        if raw[key] is not None and not isinstance(raw[key], dict):
            raise fail((key,), "must be a mapping of options")

    general = _validate(GeneralSettings, raw.get("general") or {}, ("general",), fail)
    analyses: dict[str, AnalysisSettings] = {}
    for name, model in sections.items():
        defaults = model().model_dump(by_alias=True)
        given = raw.get(name) or {}
        # `keywords` and list options replace the defaults; mappings (analysis:, tolerances:) merge.
        section = _validate(model, deep_merge(defaults, given), (name,), fail)
        _check_pylinac_keywords(name, section, fail)
        analyses[name] = section
    return Settings(general=general, analyses=analyses, source=source)


def _validate(model: type[Section], data: dict[str, Any], prefix: tuple[str, ...], fail: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = (*prefix, *err["loc"])
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, tuple(str(p) for p in err["loc"][:-1]))
            raise fail(loc, f"unknown key; allowed: {', '.join(allowed)}") from None
        raise fail(loc, f"{err['msg'].removeprefix('Value error, ')} (got {err.get('input')!r})") from None


def _allowed_keys(model: type[BaseModel], path: tuple[str, ...]) -> list[str]:
    current: Any = model
    for part in path:
        field = next((f for n, f in current.model_fields.items() if part in (n, f.alias)), None)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    return [f.alias or n for n, f in current.model_fields.items()]


def _check_pylinac_keywords(name: str, section: AnalysisSettings, fail: Any) -> None:
    """`analysis:` goes to pylinac's analyze() as is, so its keys and enum names are checked now."""
    classes = REGISTRY[name].pylinac_classes
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
            to_pylinac_kwargs(classes[0].analyze, {key: section.analysis[key]})
        except ValueError as exc:
            raise fail((name, "analysis", key), str(exc)) from None


def _refuse_secrets(node: Any, path: tuple[str, ...], fail: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if str(key).lower().replace("_", "-") in SECRET_KEYS:
                raise fail(
                    (*path, str(key)),
                    "secrets do not belong in a config file; store them in a Prefect block "
                    "(python -m blocks.setup email ...) and name the block",
                )
            _refuse_secrets(value, (*path, str(key)), fail)
