"""Errors a user can act on. The CLI prints them without a traceback and exits non-zero."""


class FgvcError(Exception):
    """Base class: the message says what is wrong and what to do about it."""

    def __init__(self, *args):
        # Raised in a DataLoader worker, it is rebuilt in the main process from "Caught X in DataLoader
        # worker process N.\nOriginal Traceback ...\nfgvc.errors.X: message": keep the message alone.
        if args and isinstance(args[0], str) and args[0].startswith("Caught ") and "\nOriginal Traceback" in args[0]:
            marker = f"\n{type(self).__module__}.{type(self).__qualname__}: "
            if marker in args[0]:
                args = (args[0].rsplit(marker, 1)[1].rstrip("\n"), *args[1:])
        super().__init__(*args)


class ConfigError(FgvcError):
    """The experiment config is invalid (unknown key, wrong type, impossible value)."""


class DataError(FgvcError):
    """A data set is missing, malformed, or holds unreadable images."""


class ImageTooLargeError(DataError):
    """An image declaring more pixels than PIL decodes (a possible decompression bomb); ``reason`` says
    its size without the file's path (the app names the upload itself)."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason


class WeightsError(FgvcError):
    """Pretrained weights cannot be found or do not fit the model."""


class CheckpointError(FgvcError):
    """A checkpoint file is missing, empty, truncated, not a checkpoint, or holds more than weights."""


class NonFiniteLossError(FgvcError):
    """The training loss (or the weights, or the validation loss) became NaN or infinite."""


class RunStopped(FgvcError):
    """A run was stopped by a signal (Ctrl-C / SIGINT, SIGTERM); its message says what is on disk."""

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


class DiskFullError(FgvcError):
    """A file of a run (a checkpoint) could not be written: no space left, a quota, a file-size limit.
    What was on disk before is kept; the message names the file."""

    def __init__(self, message: str, path: str = ""):
        super().__init__(message)
        self.path = path


class ReportError(FgvcError):
    """A report or export cannot read a record it is made from (study.json, summary.json ...) or cannot
    write its files; the message names the file."""
