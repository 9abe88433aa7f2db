"""User-facing errors.

Anything a user can fix (a bad file, a wrong flag, an unreachable endpoint) raises a `TedError`
subclass; the CLI prints its message as one line and exits non-zero, with no traceback.
Messages say what was wrong and what to do.
"""


class TedError(Exception):
    """An error the user can act on; `str(err)` is the one line shown."""

    exit_code = 2


class LibraryError(TedError):
    """A library file or reference is missing, malformed, or over the caps."""


class DataError(TedError):
    """Training or evaluation data is missing, empty, or lacks required fields."""


class ModelError(TedError):
    """A model spec is unknown, an endpoint is unreachable, or a model refuses the request."""


class ConfigError(TedError):
    """Options contradict each other or a checkpoint does not match the run."""
