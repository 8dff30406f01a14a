"""The training engines, one file each, registered by name (``train.engine``): importing this
package registers them all. A new way to train is one more file here (see :mod:`.base`)."""

from fgvc.train.engines import lightning, pipeline, probe  # noqa: F401 - registers the engines
from fgvc.train.engines.base import Engine

__all__ = ["Engine"]
