"""Prompt templates as files; `render(name, **values)` fills `name.md` with Jinja2.

The templates in this package are the default prompt set. `load(folder)` makes another set from
a folder of files with the same names (any subset: a missing file falls back to the package's),
so a run can ablate prompt versions (`ted distill --prompts DIR`). The package also ships named
sets under `sets/` (`--prompts two-step`), which may hold templates the default set lacks (a
second extraction turn, `extract_ops`). `using(prompt_set)` makes it
the one `render` reads for the code running inside it (a context variable, so concurrent runs
and their tasks keep their own). `digest` identifies the effective set and is recorded in the
library, so two libraries say whether they were written with the same prompts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ted.errors import ConfigError
from ted.files import read_capped
from ted.limits import MAX_PROMPT_BYTES, MAX_RENDERED_PROMPT_CHARS

if TYPE_CHECKING:
    import jinja2

_SUFFIX = ".md"


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    """Jinja2 loads on the first rendered template: reading a prompt's text (the library block) needs none.

    Sandboxed, with no loader: a prompt set is shared like any download, so a template may read the
    values it is given and nothing else (no attributes reaching Python internals, no `{% include %}`
    or `{% import %}` of any file, in the folder or outside it), and nothing it builds may grow past
    a prompt's cap (`ted.prompts.sandbox`)."""
    import jinja2

    from ted.prompts.sandbox import BoundedSandbox

    return BoundedSandbox(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


@lru_cache(maxsize=None)
def _compile(text: str) -> jinja2.Template:
    return _env().from_string(text)


def _package_texts(*parts: str) -> dict[str, str]:
    folder = resources.files(__name__).joinpath(*parts)
    return {
        entry.name.removesuffix(_SUFFIX): entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(_SUFFIX)
    }


_SETS = "sets"
PACKAGED_SETS = tuple(sorted(entry.name for entry in resources.files(__name__).joinpath(_SETS).iterdir() if entry.is_dir()))


@dataclass(frozen=True)
class PromptSet:
    """A complete set of templates: the package's, with any overridden from `folder`."""

    texts: dict[str, str]
    folder: str | None = None
    overridden: tuple[str, ...] = field(default=())

    def render(self, name: str, *, strip: bool = True, **values: Any) -> str:
        import jinja2

        try:
            text = _bounded_render(_compile(self.texts[name]), values)
        except jinja2.UndefinedError as err:
            raise ConfigError(f"prompt {name}{_SUFFIX} from {self.folder}: {err.message}; it can use only what the package's {name}{_SUFFIX} uses") from None
        except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError, RecursionError, MemoryError) as err:
            if self.folder is None or name not in self.overridden:  # the package's own templates: a bug in ted
                raise
            raise ConfigError(f"prompt {name}{_SUFFIX} from {self.folder} failed to render ({type(err).__name__}: {err})") from None
        return text.strip() if strip else text

    def has(self, name: str) -> bool:
        return name in self.texts

    @cached_property
    def words(self) -> str:
        """Every template's words (`copy_key`) without its Jinja tags, to tell a reply copied from a rendered prompt."""
        return copy_key(_TAG.sub(" ", "\n".join(self.texts.values())))

    @cached_property
    def digest(self) -> str:
        """sha256 of every template's name and text, in name order."""
        h = hashlib.sha256()
        for name in sorted(self.texts):
            h.update(f"{name}\0{self.texts[name]}\0".encode())
        return h.hexdigest()


def _bounded_render(template: jinja2.Template, values: dict[str, Any]) -> str:
    """`template.render(**values)`, stopped once the text passes MAX_RENDERED_PROMPT_CHARS: nested loops
    (`range` is capped, their product is not) would otherwise build a prompt as large as memory."""
    from jinja2.exceptions import SecurityError

    pieces, size = [], 0
    for piece in template.generate(**values):
        size += len(piece)
        if size > MAX_RENDERED_PROMPT_CHARS:
            raise SecurityError(f"the rendered prompt passed {MAX_RENDERED_PROMPT_CHARS:,} characters")
        pieces.append(piece)
    return "".join(pieces)


_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)


def copy_key(text: str) -> str:
    """`text` as lower-case words of letters only: the values a template fills in (limits, counts)
    are numbers, so a sentence copied from a rendered prompt has the key of the template's words."""
    return " ".join(re.findall(r"[a-z]+", text.lower()))


DEFAULT = PromptSet(_package_texts())
# Templates only some packaged sets have; a folder may hold them too.
OPTIONAL = frozenset(name for set_name in PACKAGED_SETS for name in _package_texts(_SETS, set_name)) - set(DEFAULT.texts)
KNOWN = frozenset(DEFAULT.texts) | OPTIONAL
_ACTIVE: ContextVar[PromptSet] = ContextVar("ted_prompts", default=DEFAULT)


def load(folder: str | Path | None) -> PromptSet:
    """The package's set with the `.md` files of `folder` (or of the packaged set of that name, when
    no such folder exists) in place of those of the same name."""
    if folder is None:
        return DEFAULT
    path = Path(folder).expanduser()
    if not path.is_dir() and str(folder) in PACKAGED_SETS:
        texts = _package_texts(_SETS, str(folder))
        return PromptSet(DEFAULT.texts | texts, str(folder), tuple(sorted(texts)))
    if not path.is_dir():
        raise ConfigError(
            f"--prompts {folder}: not a folder nor a packaged set ({', '.join(PACKAGED_SETS)}); "
            f"give a folder of prompt files named like ted's ({', '.join(sorted(KNOWN))})"
        )
    files = sorted(p for p in path.iterdir() if p.suffix == _SUFFIX)
    unknown = [p.name for p in files if p.stem not in KNOWN]
    if unknown:
        raise ConfigError(f"--prompts {folder}: unknown prompt file(s) {', '.join(unknown)}; the prompts are {', '.join(f'{n}{_SUFFIX}' for n in sorted(KNOWN))}")
    if not files:
        raise ConfigError(f"--prompts {folder}: no .md prompt files in it")
    import jinja2

    texts = dict(DEFAULT.texts)
    for file in files:
        if not file.resolve().is_relative_to(path.resolve()):  # a shared folder's link to ~/.ssh/id_rsa would go to the teacher as a prompt
            raise ConfigError(f"--prompts {folder}: {file.name} links outside the folder; prompt files must be inside it")
        try:
            texts[file.stem] = read_capped(file, MAX_PROMPT_BYTES, ConfigError, f"--prompts {folder}: {file.name}").decode("utf-8")
            _env().parse(texts[file.stem])
        except UnicodeDecodeError as err:
            raise ConfigError(f"--prompts {folder}: cannot read {file.name} ({err})") from None
        except jinja2.TemplateSyntaxError as err:
            raise ConfigError(f"--prompts {folder}: {file.name} line {err.lineno}: {err.message}") from None
    return PromptSet(texts, str(path), tuple(p.stem for p in files))


@contextmanager
def using(prompt_set: PromptSet) -> Iterator[PromptSet]:
    """Make `prompt_set` the one `render` reads inside the block."""
    token = _ACTIVE.set(prompt_set)
    try:
        yield prompt_set
    finally:
        _ACTIVE.reset(token)


def active() -> PromptSet:
    return _ACTIVE.get()


def render(name: str, *, strip: bool = True, **values: Any) -> str:
    """`strip=False` keeps the values' own edge whitespace (prompts that must match a harness byte for byte)."""
    return _ACTIVE.get().render(name, strip=strip, **values)


def source(name: str) -> str:
    """The active set's template text before rendering."""
    return _ACTIVE.get().texts[name]
