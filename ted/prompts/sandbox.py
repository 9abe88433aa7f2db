"""The Jinja sandbox prompt templates render in, with sizes bounded.

Jinja's sandbox keeps a template away from Python's internals and caps `range`, but not what a
template builds: `{{ 'x' * 10**10 }}`, `{{ 9 ** 9 ** 9 }}` or `{{ 'x' | center(10**10) }}` runs the
machine out of memory or computes for hours. A prompt set is shared like any download, so every
operator and call that could build something huge is checked first (Jinja's documented hooks,
`intercepted_binops`, `call` and `wrap_str_format`, and the filters), and a template that asks for more is refused.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jinja2.sandbox
from jinja2.exceptions import SecurityError

from ted.limits import MAX_RENDERED_PROMPT_CHARS as CAP

MAX_EXPONENT = 64  # `**` beyond this builds numbers no prompt needs (9 ** 9 ** 9 has 370 million digits)


def _check_count(value: Any) -> None:
    """An integer argument is a count or width: more than a prompt's cap is never one a prompt needs."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > CAP:
        raise SecurityError(f"the number {value} is over the {CAP:,} a prompt may use as a count or width")


# The widths and precisions of a `%` or `str.format` format string: `%100000000d` pads to 100 MB.
_FORMAT_NUMBERS = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\d*)(?:\.(\d*))?|\{[^{}:]*:[^{}\d]*(\d*)(?:\.(\d*))?[^{}]*\}")


def _check_format(text: Any) -> None:
    if isinstance(text, str):
        for match in _FORMAT_NUMBERS.finditer(text):
            for number in filter(None, match.groups()):
                _check_count(int(number))


def _check_size(value: Any) -> Any:
    if isinstance(value, (str, list, tuple)) and len(value) > CAP:
        raise SecurityError(f"a value of {len(value):,} items or characters, over the {CAP:,}-character cap of one prompt")
    return value


def _bounded_filter(function: Any) -> Any:
    @functools.wraps(function)  # keeps `jinja_pass_arg`: Jinja still passes the context or environment
    def bounded(*args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            _check_count(value)
        if function.__name__ == "do_format" and args:  # `'%9999999999d' | format(1)`
            _check_format(args[0])
        return _check_size(function(*args, **kwargs))

    return bounded


class BoundedSandbox(jinja2.sandbox.SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded_filter(function) for name, function in self.filters.items()}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"the exponent {right} is over {MAX_EXPONENT}")
        if operator == "%":
            _check_format(left)
        if operator == "*":
            for value in (left, right):
                _check_count(value)
            sequence, count = (left, right) if isinstance(left, (str, list, tuple)) else (right, left)
            if isinstance(sequence, (str, list, tuple)) and isinstance(count, int) and len(sequence) * count > CAP:
                raise SecurityError(f"repeating a value to over {CAP:,} characters")
        return _check_size(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value: Any) -> Any:
        """`'{:>99999999999}'.format(1)`: the sandbox wraps `str.format` when it is looked up, so check it there."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format(value.__self__)
        return wrapped

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's signature)
        for value in (*args, *kwargs.values()):
            _check_count(value)
        return _check_size(super().call(__context, __obj, *args, **kwargs))
