"""fgvc: fine-grained visual classification done properly."""

from fgvc.config import ExperimentConfig, load_config
from fgvc.errors import ConfigError, DataError, FgvcError, WeightsError

__version__ = "0.1.0"
__all__ = [
    "ConfigError",
    "DataError",
    "ExperimentConfig",
    "FgvcError",
    "WeightsError",
    "load_config",
]
