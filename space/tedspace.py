"""What the Space does, apart from how the page looks: the student, the library picker, the prompt,
the input limits and the error messages. `app.py` only lays these out.

Everything a visitor sends is untrusted: the library picker's value must name an entry of the
catalog (never a path), a version must be one the catalog listed, uploads are checked for count,
size and pixel dimensions, and backend errors reach the page as one short line with secrets
blanked out, never as a traceback.
"""

from __future__ import annotations

import asyncio
import html
import json
import math
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Generator, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from ted.control_tokens import find_control, special_tokens
from ted.errors import ConfigError, LibraryError, ModelError, TedError
from ted.hub import VersionInfo, list_versions, load_library, parse_ref
from ted.library import FILENAME, Library, cited_ids, item_line, lesson_shape_error
from ted.models import load_model, parse_spec
from ted.models.base import Message, SamplingParams
from ted.models.local import MODELS as LOCAL_MODELS
from ted.redact import scrub_text
from ted.shown import visible
from ted.system_probe import ensure_system_reaches
from ted.tasks import student_system
from ted.tokens import get_counter

log = logging.getLogger("ted.space")

HERE = Path(__file__).resolve().parent
# The libraries shipped with the repository: next to the app when the Space is deployed on its
# own, or the repository's library_cards/ when run from a checkout.
SHIPPED_DIRS = (HERE / "library_cards", HERE.parent / "library_cards")
NONE = "none"
# Replies that report a problem start with this, so they are never fed back to the model as history.
NOTICE = "⚠️ "
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)


class InputProblem(TedError):
    """A visitor's message breaks a limit; the text says what to change."""


SETTINGS_FILE = HERE / "space_settings.json"
"""Written by `ted space deploy`: defaults for the Space's variables (never secrets)."""


def settings(env: Mapping[str, str] = os.environ, path: Path = SETTINGS_FILE) -> dict[str, str]:
    """The environment over the deployed defaults: a Space variable or secret of the same name wins."""
    defaults: Any = {}
    if path.is_file():
        try:
            defaults = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ConfigError(f"{path.name}: not valid JSON ({err})") from None
    if not isinstance(defaults, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in defaults.items()):
        raise ConfigError(f"{path.name}: must map variable names to strings")
    return {**defaults, **{key: value for key, value in env.items() if value}}


@dataclass(frozen=True)
class Limits:
    """Bounds on what one visitor can ask for. Each can be set as $TED_SPACE_<NAME> (e.g. TED_SPACE_MAX_IMAGES)."""

    max_message_chars: int = 4000
    max_images: int = 4
    max_image_mb: float = 5.0
    max_image_pixels: int = 4096 * 4096
    max_new_tokens: int = 1024
    history_messages: int = 8  # earlier turns resent to the model (text only)
    concurrency: int = 2  # questions answered at once (a comparison is one); the rest wait in the queue
    queue_size: int = 16

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Limits:
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f"TED_SPACE_{f.name.upper()}"
            raw = env.get(name)
            if not raw:
                continue
            kind = type(f.default)
            try:
                value = kind(raw)
            except ValueError:
                raise ConfigError(f"${name} must be a {'whole ' if kind is int else ''}number, got {raw!r}") from None
            if value <= 0:
                raise ConfigError(f"${name} must be positive, got {raw!r}")
            values[f.name] = value
        return cls(**values)


# --------------------------------------------------------------------------- the student
BASE_MODEL_EXAMPLES = [
    {"text": "17 + 25 ="},
    {"text": "Question: A shop sells pens at 3 dollars each. How much do 7 pens cost?\nAnswer:"},
    {"text": "The next number in the sequence 2, 4, 8, 16 is"},
]
# Tasks an instruction-tuned student is measured on here (docs/tasks.md): the Space offers one problem of
# each, from the validation split (never a training or test problem), asked as ted asks it.
RG_EXAMPLE_TASKS = ("rg:gsm_symbolic", "rg:time_intervals", "rg:basic_arithmetic")
PROBLEM_EXAMPLES = [
    {"text": "A shop sells pens at 3 dollars each. How much do 7 pens cost? Give the final answer as a number."},
    {"text": "Is 91 a prime number? Explain briefly."},
    {"text": "How many positive divisors does 360 have?"},
    {"text": "A right triangle has legs 5 and 12. What is the radius of its inscribed circle?"},
]


@lru_cache(maxsize=1)
def reasoning_gym_examples() -> list[dict[str, str]]:
    """The first validation problem of each of RG_EXAMPLE_TASKS, as the student's question."""
    from ted.tasks import get_task

    examples = []
    for name in RG_EXAMPLE_TASKS:
        task = get_task(name)
        examples += [{"text": task.format_prompt(problem)} for problem in task.load(data_files=f"{name}?split=validation&n=1")]
    return examples


class Student:
    """The student model, chosen by a spec like the CLI's `--student` (default: the bundled model).

    On ZeroGPU hardware an `hf:` student generates inside `spaces.GPU`, which attaches a GPU for
    the duration of one reply; everywhere else the model's own stream is used as is.
    """

    def __init__(self, spec: str) -> None:
        backend, _, _ = parse_spec(spec)
        on_zero_gpu = backend == "hf" and bool(os.environ.get("SPACES_ZERO_GPU"))
        if on_zero_gpu:
            import spaces  # noqa: F401  (ZeroGPU wants it imported before torch)
        # A visitor should not wait through six retries with backoff: fail fast and say so.
        options: dict[str, Any] = {"max_retries": 1, "timeout": 120.0} if backend == "openai" else {}
        self.spec = spec
        self.model = load_model(spec, **options)
        self._gpu_generate = gpu_generator(self.model) if on_zero_gpu else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Student:
        student = cls(env.get("TED_STUDENT") or "local")
        student.model.system_in_user = env.get("TED_SYSTEM_IN_USER", "").lower() in ("1", "true")  # as --system-in-user
        return student

    @property
    def supports_images(self) -> bool:
        return bool(getattr(self.model, "supports_images", True))

    @property
    def examples(self) -> tuple[str, list[dict[str, str]]]:
        """Example prompts that suit this student, with their label (a base model continues text;
        an instruction model answers problems)."""
        registered = LOCAL_MODELS.get(self.spec.strip())
        if registered is not None and not registered.instruct:
            return "Examples (short completions: a small base model continues text, it does not follow instructions)", BASE_MODEL_EXAMPLES
        return f"Examples for {self.model.model}", reasoning_gym_examples() + PROBLEM_EXAMPLES

    def describe(self) -> str:
        """A one-line name for the page (never the endpoint URL, which may be private)."""
        registered = LOCAL_MODELS.get(self.spec.strip())
        if registered is not None:
            return f"{registered.about}, run by llama.cpp on CPU"
        return f"{self.model.model} ({self.model.backend} backend)"

    def warm(self) -> None:
        """Load an in-process model at start-up (where ZeroGPU wants it), so the first visitor does not wait."""
        if self.model.backend == "hf":
            self.model.load()
        elif self.model.backend == "llama_cpp":
            asyncio.run(self.model.chat([Message("user", "Hi")], SamplingParams(max_tokens=1, temperature=0.0)))
        special_tokens(self.model)  # read once here (a llama.cpp vocabulary scan), not while a visitor waits
        if self.model.backend == "openai":
            async def probe() -> None:
                try:
                    await ensure_system_reaches(self.model, fold="set TED_SYSTEM_IN_USER=1")
                finally:
                    await self.model.aclose()  # its connections belong to this start-up loop

            try:  # a template that drops system messages would show every visitor the plain student
                asyncio.run(probe())
            except ModelError as err:  # unreachable right now: visitors get the error line; the Space still starts
                log.warning("could not check that the student keeps system messages: %s", short_error(err))

    def stream(self, messages: list[Message], params: SamplingParams) -> AsyncIterator[str]:
        if self._gpu_generate is None:
            return self.model.stream(messages, params)
        return drain_in_thread(self._gpu_generate(messages, params))


def gpu_generator(model: Any) -> Any:
    """The model's stream as a synchronous generator under `spaces.GPU`, which on ZeroGPU attaches
    a GPU while it runs (ZeroGPU streams sync generators, not async ones) and elsewhere is a no-op."""
    import spaces  # preinstalled on Spaces; imported only on ZeroGPU hardware

    @spaces.GPU(duration=gpu_seconds)
    def generate(messages: list[Message], params: SamplingParams) -> Generator[str, None, None]:
        loop = asyncio.new_event_loop()
        stream = model.stream(messages, params)
        try:
            while True:
                try:
                    yield loop.run_until_complete(anext(stream))
                except StopAsyncIteration:
                    return
        finally:
            loop.run_until_complete(stream.aclose())
            loop.close()

    return generate


GPU_SETUP_S = 20
"""Seconds a ZeroGPU reply needs before its first token (attaching the GPU, the prompt): an allowance."""
GPU_TOKENS_PER_S = 15
"""A cautious decode rate for an 8B model on a ZeroGPU slice: an assumption, not a measurement."""


def gpu_seconds(messages: list[Message], params: SamplingParams) -> int:
    """The `spaces.GPU` duration for one reply: ZeroGPU stops a call at its duration (60 s by
    default), so it grows with the tokens asked for; a shorter request keeps a better queue place."""
    return GPU_SETUP_S + math.ceil(params.max_tokens / GPU_TOKENS_PER_S)


async def drain_in_thread(pieces: Generator[str, None, None]) -> AsyncIterator[str]:
    """Consume a blocking generator from async code, one piece per worker-thread step; closing
    early (a visitor pressed stop) closes the generator too."""
    done = object()
    try:
        while (piece := await asyncio.to_thread(next, pieces, done)) is not done:
            yield piece  # type: ignore[misc]
    finally:
        await asyncio.to_thread(pieces.close)


# --------------------------------------------------------------------------- libraries
@dataclass(frozen=True)
class Entry:
    """One choice of the library picker. `key` is what the page sends back."""

    key: str
    label: str
    hub: bool = False
    pinned: str | None = None  # a Hub version named in the settings (org/name@v2)


class Catalog:
    """The libraries a visitor may pick: none, the shipped ones, and those named in the settings.

    Local libraries are loaded and validated once at start-up (an invalid shipped file is left out
    with a warning; an invalid one named in the settings stops the app with one line). Hub
    libraries are fetched and validated by `ted.hub` when picked, one cached copy per version.
    """

    def __init__(self, refs: Sequence[str] = (), shipped_dirs: Sequence[Path] = SHIPPED_DIRS) -> None:
        self.entries: dict[str, Entry] = {NONE: Entry(NONE, "none: the plain student")}
        self._local: dict[str, Library] = {}
        for key, path in _shipped_files(shipped_dirs):
            try:
                self._add_local(key, Library.load(path), "shipped")
            except LibraryError as err:
                log.warning("leaving out a shipped library: %s", err)
        for ref in refs:
            parsed = parse_ref(ref)
            if parsed.kind == "local":
                self._add_local(ref, Library.load(parsed.path), "local")
            else:
                repo = str(parsed.repo_id)
                self.entries[repo] = Entry(repo, f"{repo} (Hub)", hub=True, pinned=parsed.version)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Catalog:
        refs = [ref.strip() for ref in env.get("TED_SPACE_LIBRARIES", "").split(",") if ref.strip()]
        return cls(refs)

    def _add_local(self, key: str, library: Library, where: str) -> None:
        label = f"{visible(library.name)} v{visible(library.version)} · {experiences(len(library.items))} ({where})"
        self.entries[key] = Entry(key, label)
        self._local[key] = library

    def choices(self) -> list[tuple[str, str]]:
        return [(entry.label, entry.key) for entry in self.entries.values()]

    def default(self) -> str:
        """The first library with real lessons, so a visitor sees them at work straight away.

        A shipped library whose items are not lesson-shaped (the bundled base model's demo output is
        a ramble) is listed but not preselected: the page then opens on the plain student."""
        return next((key for key, entry in self.entries.items() if entry.hub or (key in self._local and has_lessons(self._local[key]))), NONE)

    def entry(self, key: str) -> Entry:
        try:
            return self.entries[key]
        except KeyError:
            raise LibraryError(f"{key!r} is not one of this Space's libraries; pick one from the list") from None

    def versions(self, key: str) -> tuple[list[tuple[str, str]], str | None]:
        """The versions to offer for a library as (label, version), newest first, and the one to preselect."""
        entry = self.entry(key)
        if key in self._local:
            version = self._local[key].version
            return [(version, version)], version
        if not entry.hub:
            return [], None
        listed = hub_versions(entry.key)
        tags = [version for _, version in listed]
        default = entry.pinned if entry.pinned in tags else (tags[0] if tags else None)
        return listed, default

    def library(self, key: str, version: str | None) -> Library | None:
        """The validated library a visitor picked, or None for the plain student."""
        entry = self.entry(key)
        if key in self._local:
            return self._local[key]
        if not entry.hub:
            return None
        listed, default = self.versions(key)
        if version and version not in {tag for _, tag in listed}:
            raise LibraryError(f"{entry.key} has no version {version!r}; pick one from the list")
        version = version or default
        if version is None:  # the versions could not be listed: let ted.hub find the newest
            return _load_hub(entry.key)
        return _load_hub_version(entry.key, version)


def has_lessons(library: Library) -> bool:
    return any(lesson_shape_error(item.text) is None for item in library.items)


def experiences(count: int) -> str:
    return f"{count} experience" + ("" if count == 1 else "s")


def _shipped_files(dirs: Sequence[Path]) -> list[tuple[str, Path]]:
    """(key, path) of each library in the first folder of `dirs` that exists; keys are relative
    paths like library_cards/examples/x/library.json, so the page does not show server paths."""
    for folder in dirs:
        if folder.is_dir():
            return [(str(path.relative_to(folder.parent)), path) for path in sorted(folder.rglob(FILENAME))]
    return []


# Hub access goes through ted.hub: references are checked there (no local paths from visitors),
# sizes are capped before download and every library is validated.
VERSIONS_TTL_S = 600.0
_versions_cache: dict[str, tuple[float, list[tuple[str, str]]]] = {}


def hub_versions(repo_id: str) -> list[tuple[str, str]]:
    """(label, tag) of each published version, newest first; [] when they cannot be listed.

    A listing is reused for ten minutes, so a newly published version shows up without a restart.
    """
    cached = _versions_cache.get(repo_id)
    if cached and time.monotonic() - cached[0] < VERSIONS_TTL_S:
        return cached[1]
    try:
        infos = list_versions(repo_id)
    except TedError as err:
        log.warning("cannot list the versions of %s: %s", repo_id, err)
        return []
    listed = [(_version_label(info), info.version) for info in reversed(infos) if info.problem is None]  # an unreadable version is not offered
    _versions_cache[repo_id] = (time.monotonic(), listed)
    return listed


def _version_label(info: VersionInfo) -> str:
    label = f"{info.version} · {experiences(info.items)}"
    if info.baseline is not None and info.with_library is not None:
        label += f" · {info.task or 'score'} {info.baseline:.3f} → {info.with_library:.3f}"
    return label


@lru_cache(maxsize=32)
def _load_hub_version(repo_id: str, version: str) -> Library:
    return _load_hub(f"{repo_id}@{version}")


def _load_hub(ref: str) -> Library:
    return load_library(ref, allow_local=False)


# --------------------------------------------------------------------------- the prompt
def build_messages(library: Library | None, history: Sequence[Message], text: str, images: Sequence[str]) -> list[Message]:
    """`[system prompt; E; input]` as in distillation and evaluation, with the chat so far before the input."""
    return [Message("system", student_system(library) or ""), *history, Message("user", text, images=list(images))]


def shown(reply: str) -> str:
    """A model reply as the chat displays it: Markdown still renders, but raw HTML and images do
    not, so a reply (perhaps steered by a hostile library) cannot make a visitor's browser load
    remote content. `unshown` gives the model its own words back."""
    return html.escape(reply, quote=False).replace("![", "!\\[")


def unshown(text: str) -> str:
    return html.unescape(text.replace("!\\[", "!["))


def history_messages(chat: Sequence[Mapping[str, Any]], keep: int) -> list[Message]:
    """The last `keep` turns of a Gradio chat as text messages (earlier images are not resent).

    Replies that were notices (errors, refusals) are left out: they are the app talking, not the model.
    So are turns carrying chat-template control sequences (the history comes from the caller).
    """
    out: list[Message] = []
    for message in chat:
        role = message.get("role")
        if role not in ("user", "assistant"):
            continue
        text = _text_of(message.get("content"))
        if not text.strip() or (role == "assistant" and text.startswith(NOTICE)) or find_control(text):
            continue  # a turn carrying chat-template markup was forged by the caller: it never reaches the model
        out.append(Message(role, unshown(text) if role == "assistant" else text))
    out = out[-keep:]
    while out and out[0].role != "user":
        out.pop(0)
    return out


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text_of(part) for part in content if _text_of(part))
    if isinstance(content, Mapping) and content.get("type") == "text":
        return str(content.get("text", ""))
    return ""


# --------------------------------------------------------------------------- checks and messages
def check_input(text: str, files: Sequence[str], limits: Limits, supports_images: bool, special: Sequence[str] = ()) -> None:
    """Raise InputProblem with a friendly line when a message breaks a limit or carries chat-template markup."""
    from PIL import Image, UnidentifiedImageError

    if not text.strip() and not files:
        raise InputProblem("Type a question first.")
    if len(text) > limits.max_message_chars:
        raise InputProblem(
            f"Your message is {len(text):,} characters long; the limit here is {limits.max_message_chars:,}. Please shorten it."
        )
    if found := find_control(text, special):
        raise InputProblem(f"Your message contains {found!r}, a chat-template control sequence this Space does not pass to the model; please remove it.")
    if files and not supports_images:
        raise InputProblem(
            "This student reads text only, so it cannot look at images. "
            "Please ask without the image (or run the Space with a vision-language student)."
        )
    if len(files) > limits.max_images:
        raise InputProblem(f"You attached {len(files)} images; the limit is {limits.max_images}. Please remove some.")
    for path in files:
        name = Path(path).name
        size = Path(path).stat().st_size
        if size > limits.max_image_mb * 1_000_000:
            shown = f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.0f} kB"
            raise InputProblem(f"{name} is {shown}; images can be at most {limits.max_image_mb:g} MB.")
        try:
            with Image.open(path) as image:
                width, height = image.size
                image.verify()
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
            raise InputProblem(f"{name} is not an image this Space can read; please attach a PNG, JPEG, GIF or WebP.") from None
        if width * height > limits.max_image_pixels:
            raise InputProblem(f"{name} is {width}×{height} pixels; please attach a smaller image (at most {limits.max_image_pixels:,} pixels).")


def short_error(err: BaseException, env: Mapping[str, str] = os.environ) -> str:
    """One line for the page: what went wrong, with any secret from the environment blanked out.

    User errors (TedError) are already written for people; anything else is logged in full on
    the server and named only by its type on the page.
    """
    if isinstance(err, TedError):
        text = " ".join(str(err).split())
    else:
        log.error("backend failure", exc_info=err)
        text = f"the student backend failed unexpectedly ({type(err).__name__}); please try again"
    text = scrub_text(text)
    for name, value in env.items():
        if _SECRET_NAME.search(name) and len(value) >= 8:
            text = text.replace(value, "***")
    return text if len(text) <= 300 else text[:299] + "…"


def block_html(library: Library | None, cited: Sequence[str] | None = None) -> str:
    """The exact experience block as HTML; after a reply (`cited` given) its cited experiences are highlighted."""
    if library is None:
        return "<p>No library: the student sees only the base system prompt.</p>"
    block = library.render()
    if not block:
        return f"<p>{html.escape(visible(library.name))} has no experiences yet: nothing is added to the system prompt.</p>"
    marked = {item_line(item) for item in library.items if item.id in (cited or ())}
    lines = [f'<mark class="ted-cited">{html.escape(line)}</mark>' if line in marked else html.escape(line) for line in block.splitlines()]
    tokens = get_counter().count(block)  # always cl100k: a library's own tokenizer setting could trigger a download
    if cited is None:
        cites = "Experiences the reply cites are highlighted."
    else:
        cites = f"The last reply cited {', '.join(cited) if cited else 'no experience'}."
    summary = f"{html.escape(visible(library.name))} v{html.escape(visible(library.version))} · {experiences(len(library.items))} · ≈{tokens:,} tokens. {cites}"
    return f'<p class="ted-summary">{summary}</p><pre class="ted-block">' + "\n".join(lines) + "</pre>" + effects_html(library)


def effects_html(library: Library) -> str:
    """Each lesson's measured effect on accuracy (`ted attribute`), when the library has them."""
    rows = "".join(
        f"<tr><td>{html.escape(item.id)}</td><td>{html.escape(item.attribution.label())}</td></tr>" for item in library.items if item.attribution
    )
    if not rows:
        return ""
    return '<table class="ted-effects"><tr><th>lesson</th><th>effect on accuracy [95% CI], measured by ted attribute</th></tr>' + rows + "</table>"


def citations(reply: str, library: Library | None) -> list[str]:
    return cited_ids(reply, library.ids()) if library is not None else []


# --------------------------------------------------------------------------- streaming
async def interleave(streams: Mapping[str, AsyncIterator[str]]) -> AsyncIterator[tuple[str, str | BaseException | None]]:
    """Pieces from several streams as they arrive: `(key, text)`; then `(key, None)` when a
    stream ends or `(key, error)` when it fails. Stopping early cancels the streams still running."""
    queue: asyncio.Queue[tuple[str, str | BaseException | None]] = asyncio.Queue()

    async def pump(key: str, stream: AsyncIterator[str]) -> None:
        try:
            async for piece in stream:
                await queue.put((key, piece))
        except Exception as err:  # reported to the page as that side's reply
            await queue.put((key, err))
        else:
            await queue.put((key, None))

    tasks = [asyncio.create_task(pump(key, stream)) for key, stream in streams.items()]
    running = len(tasks)
    try:
        while running:
            key, item = await queue.get()
            if not isinstance(item, str):
                running -= 1
            yield key, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
