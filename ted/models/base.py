"""One protocol for chat models.

Every backend (an OpenAI-compatible URL, local transformers, llama.cpp in process, a scripted
model in tests) implements `ChatModel.chat`: messages in (text plus optional images), `n` sampled
replies out, with token usage. The distillation engine only ever sees this protocol.

Structured output is shared by all backends: `chat_json` asks for JSON (using the server's
constrained decoding where the backend supports it), mends broken JSON with json-repair,
validates with pydantic and re-asks once with the validation error.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import json_repair
from pydantic import BaseModel, ValidationError

from ted.errors import ModelError

ImageInput = Any  # a file path, raw bytes, or a PIL.Image.Image

T = TypeVar("T", bound=BaseModel)


@dataclass
class Message:
    role: Literal["system", "user", "assistant"]
    text: str
    images: list[ImageInput] = field(default_factory=list)


@dataclass
class Usage:
    """Tokens of one or more calls. `cached_prompt_tokens`: prompt tokens the server served from its
    cache, when it says (OpenAI's `prompt_tokens_details.cached_tokens`); None when no call reported it."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int | None = None

    def __add__(self, other: Usage) -> Usage:
        cached = None if self.cached_prompt_tokens is None and other.cached_prompt_tokens is None else (self.cached_prompt_tokens or 0) + (other.cached_prompt_tokens or 0)
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens, cached)


@dataclass
class ChatResult:
    """The replies of one logical call. `requests` counts HTTP/model requests actually issued.

    `texts` are the answers; a thinking model's reasoning is kept apart in `reasoning` (same
    order, "" when there was none) and why each generation ended in `finish_reasons` ("length"
    = cut off at the token limit; None when the backend does not say).
    """

    texts: list[str]
    usage: Usage = field(default_factory=Usage)
    requests: int = 1
    retries: int = 0
    wall_s: float = 0.0
    reasoning: list[str] = field(default_factory=list)
    finish_reasons: list[str | None] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""

    def add(self, content: str | None, finish_reason: str | None = None, reasoning: str | None = None) -> None:
        """Append one generation: `content` as the server sent it, reasoning split off (see `split_thinking`)."""
        thought, answer = split_thinking(content or "")
        self.reasoning.append("\n\n".join(part for part in (reasoning or "", thought) if part.strip()))
        self.texts.append(answer)
        self.finish_reasons.append(finish_reason)

    def reasoning_of(self, index: int) -> str:
        return self.reasoning[index] if index < len(self.reasoning) else ""

    def truncated(self, index: int) -> bool:
        """Whether generation `index` stopped at the token limit rather than by itself."""
        return index < len(self.finish_reasons) and self.finish_reasons[index] == "length"

    @classmethod
    def empty(cls) -> ChatResult:
        """No call at all: the start of a sum."""
        return cls(texts=[], requests=0)

    def __add__(self, other: ChatResult) -> ChatResult:
        """Two calls as one: replies (with their reasoning and finish reasons), tokens, requests, retries and seconds add up."""
        return ChatResult(
            texts=self.texts + other.texts,
            usage=self.usage + other.usage,
            requests=self.requests + other.requests,
            retries=self.retries + other.retries,
            wall_s=self.wall_s + other.wall_s,
            reasoning=self._aligned(self.reasoning, "") + other._aligned(other.reasoning, ""),
            finish_reasons=self._aligned(self.finish_reasons, None) + other._aligned(other.finish_reasons, None),
        )

    def _aligned(self, values: list[Any], missing: Any) -> list[Any]:
        """`values` padded to one per text: backends that do not report a field leave it short."""
        return values[: len(self.texts)] + [missing] * (len(self.texts) - len(values))


_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"


def split_thinking(text: str) -> tuple[str, str]:
    """(reasoning, answer) of a reply that may carry its reasoning inline as `<think>…</think>`.

    Closed blocks are reasoning; text after an unclosed `<think>` is all reasoning (the model was
    cut off while thinking); with a lone `</think>` (chat templates that open the block in the
    prompt, e.g. Qwen3's) everything before it is reasoning.
    """
    lowered = text.lower()
    opened, closed = lowered.find(_THINK_OPEN), lowered.find(_THINK_CLOSE)
    if opened < 0 and closed < 0:
        return "", text
    thoughts: list[str] = []
    answer: list[str] = []
    position = 0
    if closed >= 0 and not 0 <= opened < closed:  # the block was opened in the prompt
        thoughts.append(text[:closed])
        position = closed + len(_THINK_CLOSE)
    while True:
        start = lowered.find(_THINK_OPEN, position)
        if start < 0:
            answer.append(text[position:])
            break
        answer.append(text[position:start])
        end = lowered.find(_THINK_CLOSE, start)
        if end < 0:
            thoughts.append(text[start + len(_THINK_OPEN) :])
            break
        thoughts.append(text[start + len(_THINK_OPEN) : end])
        position = end + len(_THINK_CLOSE)
    return "\n\n".join(t.strip() for t in thoughts if t.strip()), "".join(answer).strip()


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 0.7
    max_tokens: int = 1024
    seed: int | None = None
    json_schema: dict[str, Any] | None = None


@runtime_checkable
class ChatModel(Protocol):
    """What the pipeline needs from a model."""

    spec: str
    backend: str
    model: str

    async def chat(self, messages: Sequence[Message], params: SamplingParams | None = None) -> ChatResult: ...

    def stream(self, messages: Sequence[Message], params: SamplingParams | None = None) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


class BaseChatModel:
    """Shared plumbing: one concurrency limit, wall-clock timing, and a default `stream`.

    Backends implement `_chat`. `limiter` may be replaced by a semaphore shared by several
    models so a whole run has one bound on calls in flight.
    """

    backend = "base"

    def __init__(self, spec: str, model: str, max_concurrency: int = 8) -> None:
        self.spec = spec
        self.model = model
        self.max_concurrency = max_concurrency
        self.limiter: asyncio.Semaphore | None = None
        self._own: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self.supports_images = True
        self.system_in_user = False  # `--system-in-user`: for servers whose chat template drops system messages
        # Whether a batch's shared prompt heads are sent ahead of its requests (`ted.distill.prime`):
        # for servers whose prefix cache serves requests sent together only from what an idle slot holds.
        self.primes_prefixes = False

    def _semaphore(self) -> asyncio.Semaphore:
        """The shared limiter if one was set, else this model's own (one per event loop)."""
        if self.limiter is not None:
            return self.limiter
        loop = asyncio.get_running_loop()
        if self._own is None or self._own[0] is not loop:
            self._own = (loop, asyncio.Semaphore(self.max_concurrency))
        return self._own[1]

    def prepare(self, messages: Sequence[Message]) -> list[Message]:
        """The messages as this model is sent them: with `system_in_user`, the system text folded into the first user turn."""
        return fold_system(messages) if self.system_in_user else list(messages)

    async def chat(self, messages: Sequence[Message], params: SamplingParams | None = None) -> ChatResult:
        params = params or SamplingParams()
        messages = self.prepare(messages)
        if params.n < 1:
            raise ValueError("n must be at least 1")
        self.check_images(messages)
        async with self._semaphore():
            start = time.perf_counter()
            result = await self._chat(list(messages), params)
            result.wall_s = time.perf_counter() - start
        return result

    def check_images(self, messages: Sequence[Message]) -> None:
        """Refuse images up front on a text-only model (backends' `stream` overrides call it too)."""
        if not self.supports_images and any(m.images for m in messages):
            raise ModelError(f"{self.spec} is a text-only model and cannot read images; use a vision-language student")

    async def _chat(self, messages: list[Message], params: SamplingParams) -> ChatResult:
        raise NotImplementedError

    async def stream(self, messages: Sequence[Message], params: SamplingParams | None = None) -> AsyncIterator[str]:
        """Yield the reply in pieces. Backends that can stream override this; the default yields once."""
        result = await self.chat(messages, params)
        yield result.text

    async def aclose(self) -> None:
        return None

    def special_tokens(self) -> tuple[str, ...]:
        """The tokenizer's own special tokens, checked in untrusted text (ted.control_tokens); none when unknown."""
        return ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


# --------------------------------------------------------------------------- images
# Bounds on the images one message carries to a model (student and teacher alike): a benchmark
# figure can be 6,840 pixels wide, and it goes to k + 3 calls per problem.
MAX_IMAGES = 8
MAX_IMAGE_SIDE = 2048


def bounded_images(images: Sequence[ImageInput]) -> list[ImageInput]:
    """The first `MAX_IMAGES` images (each is scaled to `MAX_IMAGE_SIDE` when it is encoded)."""
    return list(images[:MAX_IMAGES])


def image_to_png_bytes(image: ImageInput) -> bytes:
    """Normalise a path, bytes or PIL image to PNG bytes, at most `MAX_IMAGE_SIDE` pixels a side
    (raising ModelError if unreadable)."""
    from PIL import Image, UnidentifiedImageError

    try:
        if isinstance(image, (str, Path)):
            img = Image.open(image)
        elif isinstance(image, (bytes, bytearray)):
            img = Image.open(io.BytesIO(image))
        elif isinstance(image, Image.Image):
            img = image
        else:
            raise ModelError(f"unsupported image type {type(image).__name__}: pass a path, bytes or a PIL image")
        img.load()
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as err:
        raise ModelError(f"cannot read image {str(image)[:80]!r}: {err}") from None
    if img.mode not in ("RGB", "RGBA", "L"):
        img = img.convert("RGB")
    if max(img.size) > MAX_IMAGE_SIDE:
        img = img.copy()  # never resize the caller's image
        img.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def image_to_pil(image: ImageInput) -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(image_to_png_bytes(image))).convert("RGB")


def image_data_url(image: ImageInput) -> str:
    return "data:image/png;base64," + base64.b64encode(image_to_png_bytes(image)).decode("ascii")


def fold_text(system: str, text: str) -> str:
    """A user turn's text with the system text in front, a blank line apart: the one way ted folds
    the system text (the library) into the user turn, for a ted model (`fold_system`), an lm-eval
    document and an lm-eval chat template without a system role (`ted.lm_eval_docs`)."""
    system = system.rstrip()
    return f"{system}\n\n{text}" if system else text


def fold_system(messages: Sequence[Message]) -> list[Message]:
    """System messages moved to the front of the first user turn, for templates that drop system messages."""
    system = "\n\n".join(m.text.rstrip() for m in messages if m.role == "system" and m.text.strip())
    rest = [m for m in messages if m.role != "system"]
    first_user = next((i for i, m in enumerate(rest) if m.role == "user"), None)
    if not system:
        return rest
    if first_user is None:
        return [Message("user", system), *rest]
    user = rest[first_user]
    rest[first_user] = Message("user", fold_text(system, user.text), images=list(user.images))
    return rest


def to_openai_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages in the OpenAI chat format: plain strings, or content parts when images are present."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.images:
            parts: list[dict[str, Any]] = [
                {"type": "image_url", "image_url": {"url": image_data_url(img)}} for img in message.images
            ]
            parts.append({"type": "text", "text": message.text})
            out.append({"role": message.role, "content": parts})
        else:
            out.append({"role": message.role, "content": message.text})
    return out


# --------------------------------------------------------------------------- structured output
@functools.cache
def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of a reply model, built once per model (callers must not mutate it)."""
    return model.model_json_schema()


def parse_json_reply(text: str, model: type[T]) -> T:
    """Parse a model's reply into `model`: strips code fences and thinking, mends broken JSON."""
    cleaned = _strip_fences(split_thinking(text)[1])
    try:
        return model.model_validate_json(cleaned)
    except ValidationError:
        pass
    repaired = json_repair.loads(cleaned)
    if isinstance(repaired, list) and len(model.model_fields) == 1:
        # A bare list where an object with one list field was asked for.
        repaired = {next(iter(model.model_fields)): repaired}
    return model.model_validate(repaired)


def _strip_fences(text: str) -> str:
    if "```" in text:
        inner = text.split("```", 2)
        if len(inner) >= 2:
            body = inner[1]
            text = body.split("\n", 1)[1] if body.lstrip().startswith(("json", "JSON")) else body
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    return text[start:] if start > 0 else text


async def chat_json(
    chat_model: ChatModel, messages: Sequence[Message], schema: type[T], params: SamplingParams | None = None
) -> tuple[T | None, ChatResult]:
    """Ask for JSON matching `schema`; re-ask once with the error. Returns (None, result) if both fail."""
    base = params or SamplingParams(temperature=0.2)
    params = SamplingParams(
        n=1, temperature=base.temperature, max_tokens=base.max_tokens, seed=base.seed, json_schema=schema_of(schema)
    )
    history = list(messages)
    total = ChatResult.empty()
    for attempt in range(2):
        result = await chat_model.chat(history, params)
        total += result
        total.retries += attempt
        try:
            return parse_json_reply(result.text, schema), total
        except (ValidationError, ValueError, TypeError) as err:
            problem = str(err).splitlines()[0:3]
            history += [
                Message("assistant", result.text[:4000]),
                Message(
                    "user",
                    "That reply was not valid JSON for the requested schema ("
                    + " ".join(problem)
                    + "). Reply again with only the JSON object, following this schema:\n"
                    + json.dumps(params.json_schema),
                ),
            ]
    return None, total
