"""Old config keys, still read: each is moved to its new key, and a warning says once per process
what the new key is. Run folders written before the rename load unchanged.

- ``strategy.name: features``  -> ``train.engine: probe`` (with ``strategy.name: linear``)
- ``train.strategy: pipeline`` -> ``train.engine: pipeline``
- ``train.strategy: X``        -> ``train.distribution: X`` (Lightning's DDP, FSDP, ...)
- ``strategy.probe_*``, ``strategy.feature_*`` -> the ``probe:`` section
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

# (old section, old key) -> (new section, new key)
RENAMED_KEYS = {
    ("strategy", "probe_head"): ("probe", "head"),
    ("strategy", "probe_hidden"): ("probe", "hidden"),
    ("strategy", "probe_c"): ("probe", "c"),
    ("strategy", "feature_views"): ("probe", "views"),
    ("strategy", "feature_engine"): ("probe", "runtime"),
    ("strategy", "probe_layers"): ("probe", "layers"),
    ("strategy", "probe_pooling"): ("probe", "pooling"),
    ("strategy", "probe_standardize"): ("probe", "standardize"),
}


class RenamedConfigKey(FutureWarning):
    """A config used a key's old name; the warning names the new one."""


_said: set[str] = set()


def _say(message: str) -> None:
    if message not in _said:
        _said.add(message)
        warnings.warn(message, RenamedConfigKey, stacklevel=2)


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    section = raw.setdefault(name, {})
    return section if isinstance(section, dict) else {}  # a malformed section is the schema's error to report


def resolve_old_keys(raw: Any) -> Any:
    """A copy of the raw config with every old key moved to its new place (the old value wins where
    both are given: it is the later, explicit override of a dumped config)."""
    if not isinstance(raw, dict):
        return raw
    raw = copy.deepcopy(raw)
    strategy, train = raw.get("strategy"), raw.get("train")
    if isinstance(strategy, dict):
        for (_, old), (section, new) in RENAMED_KEYS.items():
            if old in strategy:
                _section(raw, section)[new] = strategy.pop(old)
                _say(f"config key strategy.{old} is now {section}.{new}; the old name still works")
        if strategy.get("name") == "features":
            strategy["name"] = "linear"
            _section(raw, "train")["engine"] = "probe"
            _say("config value strategy.name: features is now train.engine: probe (with strategy.name: linear); "
                 "the old value still works")
    if isinstance(train, dict) and "strategy" in train:
        value = train.pop("strategy")
        if value == "pipeline":
            train["engine"] = "pipeline"
            _say("config value train.strategy: pipeline is now train.engine: pipeline; the old value still works")
        else:
            train["distribution"] = value
            _say("config key train.strategy (Lightning's distribution) is now train.distribution; "
                 "the old name still works")
    return raw
