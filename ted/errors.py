"""User-facing errors, and the one place that decides the exit code.

Anything a user can fix (a bad file, a wrong flag, an unreachable endpoint) raises a `TedError`
subclass; the CLI prints its message as one line and exits with the class's `exit_code`, with no
traceback. As `hf` and Click do: 2 when the command line itself is wrong (a malformed or
contradictory flag, a model spec that names no backend: `UsageError`), 1 when ted met a failure
while doing the work (a missing or malformed file, an endpoint that refuses, the Hub).
Messages say what was wrong and what to do.
"""

RUNTIME_EXIT = 1
USAGE_EXIT = 2


class TedError(Exception):
    """An error the user can act on; `str(err)` is the one line shown."""

    exit_code = RUNTIME_EXIT


class UsageError(TedError):
    """The command line is wrong: a flag's value, flags that contradict each other."""

    exit_code = USAGE_EXIT


class LibraryError(TedError):
    """A library file or reference is missing, malformed, or over the caps."""


class DataError(TedError):
    """Training or evaluation data is missing, empty, or lacks required fields."""


class ModelError(TedError):
    """An endpoint is unreachable, or a model refuses the request."""


class SpecError(UsageError, ModelError):
    """A model spec names no known backend, or is malformed (a usage error that is also a ModelError)."""


class ConfigError(UsageError):
    """Options contradict each other or a checkpoint does not match the run."""
