"""Errors that mean the user (data or config) must act; the CLI prints them as one line."""


class ChurnwatchError(Exception):
    """A problem the user can fix; shown as one line, never a traceback."""


class ConfigError(ChurnwatchError):
    """The config file is missing, unreadable or invalid."""


class DataQualityError(ChurnwatchError):
    """A batch failed a batch-level check; nothing downstream may run."""


class NoModelError(ChurnwatchError):
    """No trained model is available for scoring."""
