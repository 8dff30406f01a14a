"""Registries, the timm way: one decorator line makes a thing creatable by name.

``@register_engine("pipeline")`` on a training engine, ``@register_source("cub200")`` on a data set
adapter, ``@register_strategy("lora")`` on a transfer strategy, ``@register_pooling("max")`` on a
pooling, ``@register_method("wsdan")`` on a fine-grained method: the config's choices, its error messages and ``fgvc config choices`` come from here, and a
name is compared as a string only where the registry looks it up.

This module sits beside the config at the bottom of the house and imports nothing of fgvc. Each
registry knows the package (or module) that fills it and reads the decorator lines there as text
(Python's ``ast``): names, one-line descriptions and details are known without importing torch,
Lightning or timm, so a config is checked in a fraction of a second. The module that defines a
thing is imported when the thing itself is first asked for (:meth:`Registry.get`), and its
decorator then registers the object. Things registered at run time (a plugin, a test) count too.
"""

from __future__ import annotations

import ast
import difflib
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")
SOURCE_ROOT = Path(__file__).resolve().parent  # src/fgvc: the registries' packages are read from here


class RegistryError(ValueError):
    """An unknown name (a ValueError, so a config validator turns it into the config's own error)."""


@dataclass
class Declared:
    """A registration read from source: where it is, its description and details."""

    module: str
    doc: str
    details: dict[str, Any]


@dataclass
class Registry(Generic[T]):
    """Things of one kind by name. ``what`` reads in messages ("training engine"); ``package`` is the
    dotted fgvc package or module whose ``@<decorator>(...)`` lines declare them."""

    what: str
    package: str
    decorator: str
    entries: dict[str, T] = field(default_factory=dict)
    _registered: dict[str, Declared] = field(default_factory=dict)  # at run time, by the decorator
    _declared: dict[str, Declared] | None = None  # read from source, once

    def register(self, name: str, doc: str = "", **details: Any) -> Callable[[T], T]:
        """Decorator: register the decorated object as ``name`` (``doc``: one line for the help, else
        its docstring's first line; ``details``: facts the config checks, e.g. a data set's labels).
        Write the arguments as literals: the registry also reads them from the source."""

        def add(thing: T) -> T:
            if name in self.entries and self.entries[name] is not thing:
                raise RegistryError(f"{self.what} {name!r} is registered twice")
            self.entries[name] = thing
            self._registered[name] = Declared(getattr(thing, "__module__", ""), doc or _first_line(thing), details)
            return thing

        return add

    def unregister(self, name: str) -> None:
        """Remove a thing registered at run time (a test's, a plugin's)."""
        self.entries.pop(name, None)
        self._registered.pop(name, None)

    # -- what is known without importing -------------------------------------------------------
    def _all(self) -> dict[str, Declared]:
        if self._declared is None:
            self._declared = declared_in(self.package, self.decorator)
        return {**self._declared, **self._registered}

    def names(self) -> list[str]:
        """Registered names: those declared in the package's source, in file order, then any
        registered at run time."""
        return list(self._all())

    def info(self, name: str) -> dict[str, Any]:
        """The details ``name`` was registered with ({} for an unknown name)."""
        found = self._all().get(name)
        return found.details if found else {}

    def doc(self, name: str) -> str:
        found = self._all().get(name)
        return found.doc if found else ""

    def check(self, name: str) -> str:
        """``name`` if registered, else an error listing the names (and the closest one)."""
        known = self.names()
        if name in known:
            return name
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RegistryError(f"unknown {self.what} {name!r}{hint}; choose one of: {', '.join(known)}")

    def help(self) -> str:
        """One line: every name with its description, for config comments and --help."""
        return "; ".join(f"{name} ({doc})" if doc else name for name, doc in
                         ((n, d.doc) for n, d in self._all().items()))

    # -- the thing itself ----------------------------------------------------------------------
    def get(self, name: str) -> T:
        """The registered object (its module is imported now, if it was not yet)."""
        self.check(name)
        if name not in self.entries:
            importlib.import_module(self._all()[name].module)
        if name not in self.entries:
            raise RegistryError(f"{self.what} {name!r} is declared in {self._all()[name].module} but its "
                                "decorator did not register it")
        return self.entries[name]


def declared_in(package: str, decorator: str) -> dict[str, Declared]:
    """Every ``@decorator("name", ...)`` in the source of ``package`` (a folder or one module of fgvc),
    read with ``ast``: nothing is imported or run."""
    relative = Path(*package.split(".")[1:])
    folder, single = SOURCE_ROOT / relative, (SOURCE_ROOT / relative).with_suffix(".py")
    files = sorted(folder.glob("*.py")) if folder.is_dir() else [single]
    found: dict[str, Declared] = {}
    for path in files:
        module = package if path == single else f"{package}.{path.stem}"
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                continue
            for call in node.decorator_list:
                if not (isinstance(call, ast.Call) and _called(call) == decorator):
                    continue
                try:
                    name = ast.literal_eval(call.args[0])
                    doc = ast.literal_eval(call.args[1]) if len(call.args) > 1 else ""
                    details = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg != "doc"}
                    doc = doc or next((ast.literal_eval(k.value) for k in call.keywords if k.arg == "doc"), "")
                except (ValueError, IndexError):
                    raise RegistryError(f"{path}:{call.lineno}: @{decorator}(...) takes literal arguments (a name, "
                                        "then a doc string and details written as values)") from None
                found[name] = Declared(module, doc or _first_line_of(ast.get_docstring(node)), details)
    return found


def _called(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _first_line(thing: Any) -> str:
    return _first_line_of(getattr(thing, "__doc__", None))


def _first_line_of(doc: str | None) -> str:
    doc = (doc or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else ""


ENGINES: Registry[Any] = Registry("training engine", "fgvc.train.engines", "register_engine")
SOURCES: Registry[Any] = Registry("data set", "fgvc.data.sources", "register_source")
STRATEGIES: Registry[Any] = Registry("transfer strategy", "fgvc.models.strategies", "register_strategy")
POOLINGS: Registry[Any] = Registry("pooling", "fgvc.models.pooling", "register_pooling")
METHODS: Registry[Any] = Registry("fine-grained method", "fgvc.models.methods", "register_method")

register_engine = ENGINES.register
register_source = SOURCES.register
register_strategy = STRATEGIES.register
register_pooling = POOLINGS.register
register_method = METHODS.register

# The config keys whose values are registered names (``fgvc config choices`` lists them).
CONFIG_CHOICES: dict[str, Registry[Any]] = {
    "data.name": SOURCES,
    "strategy.name": STRATEGIES,
    "train.engine": ENGINES,
    "probe.pooling": POOLINGS,
    "method.name": METHODS,
}
