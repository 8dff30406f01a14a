"""The resolved config as commented YAML: each key with its description from the schema, and by
default only the sections an experiment uses (the generative ones and the executor only when the
config names them)."""

from __future__ import annotations

import yaml
from pydantic import BaseModel

from fgvc.config.experiment import ExperimentConfig
from fgvc.registry import CONFIG_CHOICES

# Sections that only some commands read; shown when the config file or --set names them (or with --all).
OPTIONAL_SECTIONS = ("executor", "gan", "diffusion", "stable_diffusion")


def sections_in_use(cfg: ExperimentConfig) -> list[str]:
    return [name for name in ExperimentConfig.model_fields
            if name not in OPTIONAL_SECTIONS or name in cfg.model_fields_set]


def _scalar(value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _lines(model: BaseModel, indent: int, prefix: str) -> list[str]:
    out = []
    pad = "  " * indent
    for key, field in type(model).model_fields.items():
        value = getattr(model, key)
        description = field.description or ""
        if f"{prefix}{key}" in CONFIG_CHOICES:  # registered names: the choices come from the registry
            description = f"{description}. Choices: {CONFIG_CHOICES[f'{prefix}{key}'].help()}"
        comment = f"  # {description}" if description else ""
        if isinstance(value, BaseModel):
            out.append(f"{pad}{key}:{comment}")
            out += _lines(value, indent + 1, f"{prefix}{key}.")
        else:
            out.append(f"{pad}{key}: {_scalar(value if not hasattr(value, '__fspath__') else str(value)) if value is not None else 'null'}{comment}")
    return out


def described_yaml(cfg: ExperimentConfig, everything: bool = False) -> str:
    """YAML that loads back to ``cfg`` (for the sections shown), one comment per key."""
    shown = list(ExperimentConfig.model_fields) if everything else sections_in_use(cfg)
    dumped = cfg.model_dump(mode="json")
    out = []
    for name in shown:
        value = getattr(cfg, name)
        if isinstance(value, BaseModel):
            doc = (type(value).__doc__ or "").strip().splitlines()
            out.append(f"{name}:" + (f"  # {doc[0]}" if doc else ""))
            out += _lines(type(value).model_validate(dumped[name]), 1, f"{name}.")
        else:
            out.append(f"{name}: {_scalar(dumped[name])}")
    hidden = [n for n in ExperimentConfig.model_fields if n not in shown]
    if hidden:
        out.append(f"# not used by this config (fgvc config show --all prints them): {', '.join(hidden)}")
    return "\n".join(out) + "\n"
