"""Prompt templates as files; `render(name, **values)` fills `name.md` with Jinja2."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


@lru_cache(maxsize=None)
def _template(name: str) -> jinja2.Template:
    return _ENV.from_string(source(name))


def render(name: str, *, strip: bool = True, **values: Any) -> str:
    """`strip=False` keeps the values' own edge whitespace (prompts that must match a harness byte for byte)."""
    text = _template(name).render(**values)
    return text.strip() if strip else text


@lru_cache(maxsize=None)
def source(name: str) -> str:
    """The template file's own text, before rendering (to tell copied instructions from new text)."""
    return resources.files(__name__).joinpath(f"{name}.md").read_text(encoding="utf-8")

