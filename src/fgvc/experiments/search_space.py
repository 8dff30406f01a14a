"""A search space: config keys and the distribution each is drawn from, checked against the schema
before any trial starts.

SPACE.yaml::

    optim.lr: {loguniform: [1.0e-4, 1.0e-2]}
    optim.weight_decay: {uniform: [0.0, 0.1]}
    strategy.unfreeze_last: {int: [1, 3]}          # both ends included
    data.transforms.crop: {choice: [128, 224]}
    loss.name: {choice: [ce, focal]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fgvc.config import ExperimentConfig, read_yaml
from fgvc.errors import ConfigError, FgvcError
from fgvc.experiments.groups import member_config

SPACE_FILE = "space.yaml"  # the name a committed search space has (configs/search_*/space.yaml)
DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
# what a search may not choose: the seed (a search over seeds finds luck), where runs are written,
# the test split (a search never looks at it), and where runs train
FORBIDDEN = ("seed", "output.", "data.test", "executor.")


@dataclass(frozen=True)
class Dimension:
    key: str
    kind: str
    values: tuple

    def to_tune(self):
        from ray import tune

        if self.kind == "uniform":
            return tune.uniform(*self.values)
        if self.kind == "loguniform":
            return tune.loguniform(*self.values)
        if self.kind == "int":
            return tune.randint(self.values[0], self.values[1] + 1)  # Tune's upper end is exclusive
        return tune.choice(list(self.values))

    def describe(self) -> str:
        return f"{self.kind} {list(self.values)}"


def overrides_for(params: dict[str, Any]) -> list[str]:
    """{'optim.lr': 0.003} -> ['optim.lr=0.003'] (values as JSON, so strings and lists survive)."""
    return [f"{key}={json.dumps(value)}" for key, value in params.items()]


def _dimension(source: str, key: str, spec: Any) -> Dimension:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(f"{source}: {key}: expected one distribution, e.g. {{loguniform: [1.0e-4, 1.0e-2]}} or "
                          f"{{choice: [a, b]}}; got {spec!r}")
    kind, values = next(iter(spec.items()))
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{source}: {key}: unknown distribution {kind!r}; choose one of {', '.join(DISTRIBUTIONS)}")
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{source}: {key}: {kind} takes a list, e.g. {kind}: [low, high]")
    if kind != "choice":
        if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"{source}: {key}: {kind} takes [low, high] numbers; got {values!r}")
        low, high = values
        if not low < high:
            raise ConfigError(f"{source}: {key}: {kind} needs low < high; got [{low}, {high}]")
        if kind == "loguniform" and low <= 0:
            raise ConfigError(f"{source}: {key}: loguniform needs low > 0; got {low}")
        if kind == "int" and not all(isinstance(v, int) for v in values):
            raise ConfigError(f"{source}: {key}: int takes [low, high] integers; got {values!r}")
    return Dimension(key, kind, tuple(values))


def load_space(path: Path, base: ExperimentConfig) -> list[Dimension]:
    """Read SPACE.yaml and check every key and every value it can draw against ``base``'s schema."""
    path = Path(path)
    if not path.is_file():
        raise FgvcError(f"search space not found: {path}")
    raw = read_yaml(path)
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: expected a mapping of config keys to distributions, e.g. "
                          "optim.lr: {loguniform: [1.0e-4, 1.0e-2]}")
    dimensions = []
    for key, spec in raw.items():
        if any(key == f or (f.endswith(".") and key.startswith(f)) or key.startswith(f) for f in FORBIDDEN):
            raise ConfigError(f"{path}: {key} cannot be searched (a search never chooses the seed, the test split, "
                              "or where runs are written)")
        dimension = _dimension(str(path), key, spec)
        for value in dimension.values:  # choice: every value; ranges: both ends
            value = int(value) if dimension.kind == "int" else value
            try:
                member_config(base, overrides_for({key: value}))
            except FgvcError as exc:
                lines = [line.strip(" -") for line in str(exc).splitlines()]
                detail = "; ".join(lines[1:]) or lines[0]
                raise ConfigError(f"{path}: {key}: {dimension.describe()} does not fit the config: {detail}") from None
        dimensions.append(dimension)
    return dimensions
