"""Loading an experiment config: YAML files, ``--set key.path=value`` overrides, and readable errors.

An unknown key, a wrong type or an impossible value raises :class:`fgvc.errors.ConfigError` naming the
key and, for unknown keys, the valid ones.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Optional, Union

import yaml
from pydantic import BaseModel, ValidationError

from fgvc.config.experiment import ExperimentConfig
from fgvc.errors import ConfigError


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into its key path and its YAML-parsed value."""
    key, sep, raw = text.partition("=")
    path = [part for part in key.strip().split(".")]
    if not sep or not key.strip() or any(not part for part in path):
        raise ConfigError(f"--set {text!r}: expected KEY.PATH=VALUE, e.g. --set optim.lr=0.01")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({exc})") from exc
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a raw config dict (in place; also returned)."""
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for depth, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(path[: depth + 1])
                raise ConfigError(f"--set {text!r}: {where} is a value ({child!r}), not a section")
            node = child
        node[path[-1]] = value
    return raw


def _section_at(loc: tuple[Any, ...]) -> Optional[type[BaseModel]]:
    """The schema class that owns the keys at ``loc`` (None if loc leaves the schema)."""
    model: type[BaseModel] = ExperimentConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    key = ".".join(str(part) for part in loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        section = _section_at(loc[:-1])
        valid = sorted(section.model_fields) if section else []
        hint = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"unknown key {key!r}{suggestion}; valid keys here: {', '.join(valid)}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "value_error" and _section_at(loc) is not None:  # a whole-section check names its keys
        return message
    if ("input" in error and not isinstance(error["input"], dict) and error["type"] != "missing"
            and "(got " not in message):  # a check that names the value itself is not told it twice
        return f"{key}: {message} (got {error['input']!r})"
    return f"{key}: {message}"


def validate_config(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a raw dict into an ExperimentConfig, or raise ConfigError listing every problem."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(raw).__name__}")
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "\n".join(f"  - {_describe(err)}" for err in exc.errors())
        raise ConfigError(f"{source} is invalid:\n{problems}") from None


def read_yaml(path: Union[str, Path]) -> dict[str, Any]:
    """Read a YAML config file into a dict, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (data:, model:, ...)")
    return raw


def load_config(path: Union[str, Path, None] = None, overrides: Optional[list[str]] = None) -> ExperimentConfig:
    """Load a YAML config (or the defaults when path is None) and apply ``--set`` overrides."""
    raw = read_yaml(path) if path is not None else {}
    apply_overrides(raw, list(overrides or []))
    config = validate_config(raw, source=str(path) if path is not None else "config")
    if config.output.name is None and path is not None:
        config.output.name = Path(path).stem
    return config
