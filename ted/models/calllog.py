"""Every model call on record: one JSON line per call (and per teacher proposal) in a file beside the run's output.

Why: a run that writes no lessons must say why, and the only witness is what the models were sent
and what they answered. One wrapper (`Recorded`) sits in front of any `ChatModel`, so no backend
carries logging code; what a call was *for* (stage, problem, epoch, step) travels in a context
variable that the engine sets around each stage (`context`), so the stages need no extra arguments.

The log is written line by line as calls finish (a long run holds none of it in memory); each text
field is capped at `FIELD_CHARS` characters (its head and tail kept, the cut said in the text);
images are written as the sha256 of the PNG bytes the model is sent, never the bytes; every string
goes through `ted.redact.scrub_value` first. `--resume` truncates the file to the length recorded
in the checkpoint and appends from there, so the calls redone after an interruption appear once.
The schema of a line is in docs/call-log.md.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import hashlib
import json
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

from pydantic import BaseModel, ConfigDict, Field

from ted.errors import ConfigError, TedError
from ted.files import open_in_place, open_regular
from ted.models.base import ChatModel, ChatResult, Message, SamplingParams, image_to_png_bytes
from ted.redact import scrub_text, scrub_value

FIELD_CHARS = 20_000  # characters kept of any one text field (a message, a reply, its reasoning)

_CONTEXT: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("ted_call_context", default={})  # noqa: B039 (never mutated)


LOG_SUFFIX = ".calls.jsonl"


def calls_path(out: str | Path) -> Path:
    """The call log of the run writing `out`, beside it and named after its whole file name
    (`library.json` → `library.json.calls.jsonl`): two outputs that differ only in their suffix
    (`a.json`, `a.jsonl`) never share a log."""
    out = Path(out)
    return out.with_name(out.name + LOG_SUFFIX)


@contextlib.contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Tag the calls made inside (this task and the tasks it starts) with `fields`: stage, problem, epoch, step…"""
    token = _CONTEXT.set(_CONTEXT.get() | {k: v for k, v in fields.items() if v is not None})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def capped(text: str | None, limit: int = FIELD_CHARS) -> str | None:
    """`text` cut to `limit` characters, keeping its head and tail and saying how much went."""
    if text is None or len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n…[{len(text) - 2 * half} characters cut from the call log]…\n{text[-half:]}"


def image_digest(image: Any) -> str:
    """`sha256:` of the PNG the model is sent (the bytes every backend encodes), or why it could not be read."""
    try:
        return "sha256:" + hashlib.sha256(image_to_png_bytes(image)).hexdigest()
    except Exception as err:  # noqa: BLE001 — an unreadable image fails the call itself; its record only says so
        return f"unreadable: {scrub_text(str(err))[:200]}"


class CallLog:
    """The append-only JSONL file of one run (or one `ted eval` / `ted reproduce`). Writes are
    synchronous and small (the page cache takes them), so a record is on disk before the checkpoint
    that counts it, and `offset()` read at a checkpoint is consistent with the state it saves."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()

    def open(self, resume_at: int | None = None) -> CallLog:
        """Start the file afresh, or (resuming) cut it back to `resume_at` bytes and append."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_at is None or not self.path.exists():
            self._file = os.fdopen(open_in_place(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, ConfigError, "call log"), "wb")
        else:
            self._file = os.fdopen(open_in_place(self.path, os.O_RDWR, ConfigError, "call log"), "r+b")
            self._file.truncate(min(resume_at, os.fstat(self._file.fileno()).st_size))
            self._file.seek(0, 2)
        return self

    def offset(self) -> int:
        """Bytes written so far: what a checkpoint records, so `--resume` drops the calls it redoes."""
        with self._lock:
            return self._file.tell() if self._file is not None else 0

    def write(self, kind: str, **fields: Any) -> None:
        """One line: `kind`, the time, the current context, then `fields`, scrubbed and capped."""
        if self._file is None:
            return
        record = {"kind": kind, "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")}
        record |= _CONTEXT.get() | fields
        line = json.dumps(_bounded(scrub_value(record)), ensure_ascii=False, allow_nan=False, default=str) + "\n"  # scrubbed whole: a cut never halves a secret
        with self._lock:
            self._file.write(line.encode("utf-8", "backslashreplace"))
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> CallLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bounded(value: Any) -> Any:
    """`value` with every string capped and every non-finite number (NaN, Infinity from a server) as null: strict JSON."""
    if isinstance(value, str):
        return capped(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _bounded(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_bounded(item) for item in value]
    return value


def _messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    return [{"role": m.role, "text": m.text} | ({"images": [image_digest(i) for i in m.images]} if m.images else {}) for m in messages]


def _params(params: SamplingParams | None) -> dict[str, Any]:
    p = params or SamplingParams()
    return {"n": p.n, "temperature": p.temperature, "max_tokens": p.max_tokens, "seed": p.seed, "json": p.json_schema is not None}


def _replies(result: ChatResult) -> list[dict[str, Any]]:
    return [
        {"content": text, "reasoning": result.reasoning_of(i) or None, "finish_reason": result.finish_reasons[i] if i < len(result.finish_reasons) else None}
        for i, text in enumerate(result.texts)
    ]


class Recorded:
    """A `ChatModel` whose every `chat` (and `stream`) is written to `log` under `role`.

    Everything else (limiter, images support, the server's URL…) is the wrapped model's: attributes
    are read from it and set on it, so `share_limiters` and `--system-in-user` reach the backend."""

    _OWN = ("inner", "log", "role")

    def __init__(self, inner: ChatModel, log: CallLog, role: str) -> None:
        object.__setattr__(self, "inner", inner)
        object.__setattr__(self, "log", log)
        object.__setattr__(self, "role", role)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.inner, name, value)

    def __repr__(self) -> str:
        return f"Recorded({self.inner!r}, role={self.role!r})"

    async def chat(self, messages: Sequence[Message], params: SamplingParams | None = None) -> ChatResult:
        start = time.perf_counter()
        try:
            result = await self.inner.chat(messages, params)
        except Exception as err:
            self._write(messages, params, None, time.perf_counter() - start, f"{type(err).__name__}: {err}")
            raise
        self._write(messages, params, result, result.wall_s or time.perf_counter() - start, None)
        return result

    async def stream(self, messages: Sequence[Message], params: SamplingParams | None = None) -> AsyncIterator[str]:
        """The wrapped stream, piece by piece; one record when it ends (or fails), with the whole reply."""
        start, pieces, error = time.perf_counter(), [], None
        try:
            async for piece in self.inner.stream(messages, params):
                pieces.append(piece)
                yield piece
        except Exception as err:
            error = f"{type(err).__name__}: {err}"
            raise
        finally:
            result = ChatResult(texts=["".join(pieces)])
            self._write(messages, params, result, time.perf_counter() - start, error)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def _write(self, messages: Sequence[Message], params: SamplingParams | None, result: ChatResult | None, seconds: float, error: str | None) -> None:
        usage = result.usage if result is not None else None
        self.log.write(
            "call",
            role=self.role,
            model=self.inner.spec,
            messages=_messages(messages),
            params=_params(params),
            replies=_replies(result) if result is not None else [],
            usage={"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "cached_prompt_tokens": usage.cached_prompt_tokens}
            if usage is not None
            else None,
            requests=result.requests if result is not None else None,
            retries=result.retries if result is not None else None,
            seconds=round(seconds, 3),
            error=error,
        )


# --------------------------------------------------------------------------- reading
MAX_LINE_BYTES = 16 * 1024 * 1024  # a line longer than any record ted writes (fields are capped) is skipped, not read


def find_log(ref: str | Path) -> Path:
    """The call log `ref` names: the file itself, the one beside a library file, or the one in a run's folder."""
    path = Path(ref).expanduser()
    if path.is_dir():
        logs = sorted(path.glob("*" + LOG_SUFFIX))
        if len(logs) == 1:
            return logs[0]
        default = calls_path(path / "library.json")
        if default in logs or not logs:
            return default if default.exists() else _missing(path)
        raise ConfigError(f"{path} holds several call logs ({', '.join(log.name for log in logs[:5])}); name one")
    if path.name.endswith(LOG_SUFFIX):  # not any .jsonl: a run may write its output as one
        return path if path.exists() else _missing(path)
    beside = calls_path(path)
    return beside if beside.exists() else _missing(path)


def _missing(path: Path) -> NoReturn:
    raise TedError(f"no call log at {path}: give a run's --out (its folder or library file) or its .calls.jsonl")  # a missing file: exit 1


class _Message(BaseModel):
    role: str
    text: str = ""
    images: list[str] = Field(default_factory=list)


class _Reply(BaseModel):
    content: str | None = None
    reasoning: str | None = None
    finish_reason: str | None = None


class _Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int | None = None


class Record(BaseModel):
    """One line as `ted log` reads it: the fields it shows, typed, so a damaged or hand-made log is
    refused line by line instead of failing the command (docs/call-log.md names every field)."""

    model_config = ConfigDict(extra="allow")

    kind: str
    stage: str | None = None
    role: str | None = None
    model: str | None = None
    problem: str | None = None
    epoch: int | None = None
    step: int | None = None
    messages: list[_Message] = Field(default_factory=list)
    params: dict[str, Any] | None = None
    replies: list[_Reply] = Field(default_factory=list)
    usage: _Usage | None = None
    retries: int | None = None
    seconds: float | None = None
    error: str | None = None
    op: str | None = None
    id: str | None = None
    text: str | None = None
    rejection: str | None = None
    detail: str | None = None
    skipped: bool = False
    structured: bool = True
    parsed: bool = True
    diagnosis: str | None = None
    proposed: int | None = None
    accepted: int | None = None
    reply: str | None = None


def read_log(path: Path) -> Iterator[dict[str, Any] | None]:
    """The records of `path` in order; None for each line that is not one (too long, cut off by a kill, not JSON, wrong types)."""
    with open_regular(path, TedError) as handle:  # a FIFO or /dev/zero named as the log would never end
        while line := handle.readline(MAX_LINE_BYTES + 1):
            if len(line) > MAX_LINE_BYTES:
                while line and not line.endswith(b"\n"):  # skip the rest of the over-long line
                    line = handle.readline(MAX_LINE_BYTES)
                yield None
                continue
            try:
                yield Record.model_validate_json(line).model_dump()
            except (ValueError, RecursionError):  # pydantic's ValidationError is a ValueError
                yield None
