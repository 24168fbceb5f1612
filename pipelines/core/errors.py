"""Errors that mean the user (data or config) must act; the CLI prints them as one line."""


class ChurnwatchError(Exception):
    """A problem the user can fix; shown as one line, never a traceback."""


class ConfigError(ChurnwatchError):
    """The config file is missing, unreadable or invalid."""


class DataQualityError(ChurnwatchError):
    """A batch failed a batch-level check; nothing downstream may run."""


class NoModelError(ChurnwatchError):
    """No trained model is available for scoring."""


def first_line(exc: BaseException) -> str:
    """Return the first non-empty line of an error's message, or its type's name without one."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
