"""Errors a user can act on. The CLI prints them without a traceback and exits non-zero."""


class FgvcError(Exception):
    """Base class: the message says what is wrong and what to do about it."""


class ConfigError(FgvcError):
    """The experiment config is invalid (unknown key, wrong type, impossible value)."""


class DataError(FgvcError):
    """A data set is missing, malformed, or holds unreadable images."""


class WeightsError(FgvcError):
    """Pretrained weights cannot be found or do not fit the model."""
