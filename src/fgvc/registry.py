"""Registries, the timm way: one decorator line makes a thing creatable by name.

``@register_engine("pipeline")`` on a training engine, ``@register_source("cub200")`` on a data set
adapter, ``@register_strategy("lora")`` on a transfer strategy, ``@register_pooling("max")`` on a
pooling: the config's choices, its error messages and ``fgvc config show``'s comments come from
here, and a name is compared as a string only where the registry looks it up.

This module sits beside the config at the bottom of the house and imports nothing of fgvc. Each
registry names the package that fills it; that package is imported the first time the registry
is read (a plugin load, as timm's ``create_model`` relies on ``timm.models`` having registered its
models), so the config can check a name without importing the layers above it at start-up.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class RegistryError(ValueError):
    """An unknown name (a ValueError, so a config validator turns it into the config's own error)."""


@dataclass
class Registry(Generic[T]):
    """Things of one kind by name. ``what`` reads in messages ("training engine")."""

    what: str
    package: str
    entries: dict[str, T] = field(default_factory=dict)
    docs: dict[str, str] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    _state: str = "new"  # new, loading (its package is being imported), loaded

    def register(self, name: str, doc: str = "", **details: Any) -> Callable[[T], T]:
        """Decorator: register the decorated object as ``name`` (``doc``: one line for the help, else
        its docstring's first line; ``details``: facts the config checks, e.g. a data set's labels)."""

        def add(thing: T) -> T:
            if name in self.entries and self.entries[name] is not thing:
                raise RegistryError(f"{self.what} {name!r} is registered twice")
            self.entries[name] = thing
            self.docs[name] = doc or _first_line(thing)
            self.details[name] = details
            return thing

        return add

    def _load(self) -> None:
        if self._state != "new":  # loading: the package's own imports read the registry while it fills
            return
        self._state = "loading"
        try:
            importlib.import_module(self.package)
        except BaseException:
            self._state = "new"
            raise
        self._state = "loaded"

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        self._load()
        return list(self.entries)

    def check(self, name: str) -> str:
        """``name`` if registered, else an error listing the names (and the closest one)."""
        known = self.names()
        if name in known:
            return name
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RegistryError(f"unknown {self.what} {name!r}{hint}; choose one of: {', '.join(known)}")

    def info(self, name: str) -> dict[str, Any]:
        """The details ``name`` was registered with ({} for an unknown name)."""
        self._load()
        return self.details.get(name, {})

    def get(self, name: str) -> T:
        return self.entries[self.check(name)]

    def help(self) -> str:
        """One line: every name with its description, for config comments and --help."""
        self._load()
        return "; ".join(f"{name} ({doc})" if doc else name for name, doc in self.docs.items())


def _first_line(thing: Any) -> str:
    doc = (getattr(thing, "__doc__", None) or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else ""


ENGINES: Registry[Any] = Registry("training engine", "fgvc.train.engines")
SOURCES: Registry[Any] = Registry("data set", "fgvc.data.sources")
STRATEGIES: Registry[Any] = Registry("transfer strategy", "fgvc.models.strategies")
POOLINGS: Registry[Any] = Registry("pooling", "fgvc.models.pooling")

register_engine = ENGINES.register
register_source = SOURCES.register
register_strategy = STRATEGIES.register
register_pooling = POOLINGS.register

# The config keys whose values are registered names (``fgvc config choices`` lists them).
CONFIG_CHOICES: dict[str, Registry[Any]] = {
    "data.name": SOURCES,
    "strategy.name": STRATEGIES,
    "train.engine": ENGINES,
    "probe.pooling": POOLINGS,
}
