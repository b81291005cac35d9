"""User-facing errors: the CLI prints them as one line and exits non-zero, never a traceback."""


class SegsslError(Exception):
    """An error caused by the user's input (a file, a config value); the message names the culprit."""


class DataError(SegsslError):
    """A dataset problem; the message starts with the offending file."""
