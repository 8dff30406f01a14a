"""The ``fgvc`` command line: a thin Typer layer over the library.

Importing the command modules registers their commands on ``app``.
"""

from fgvc.cli import data, training, experiments, explain, synthetic, gan, shipping, pipeline  # noqa: F401,I001  (registers commands)
from fgvc.cli._common import app

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console script entry
    app()
