"""Errors a user can act on. The CLI prints them without a traceback and exits non-zero."""


class FgvcError(Exception):
    """Base class: the message says what is wrong and what to do about it."""


class ConfigError(FgvcError):
    """The experiment config is invalid (unknown key, wrong type, impossible value)."""


class DataError(FgvcError):
    """A data set is missing, malformed, or holds unreadable images."""


class WeightsError(FgvcError):
    """Pretrained weights cannot be found or do not fit the model."""


class NonFiniteLossError(FgvcError):
    """The training loss (or the weights, or the validation loss) became NaN or infinite."""


class RunStopped(FgvcError):
    """A run was stopped by a signal (Ctrl-C / SIGINT, SIGTERM); its message says what is on disk."""

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code
