"""What an OpenAI-compatible server sends back, read defensively: a completion's choices and usage
(any field may be missing or of the wrong type), the limits a refusal states, a failure as one
short line; and the transport that bounds each try in time and size."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from ted.errors import ModelError
from ted.limits import MAX_REPLY_BYTES
from ted.models.base import Usage

# Where thinking models' reasoning arrives apart from the answer.
_REASONING_FIELDS = ("reasoning_content", "reasoning")

# What servers say when a request is too long for the context (vLLM, SGLang, OpenAI, DeepSeek).
_CONTEXT_SAID = re.compile(r"maximum context length (?:is|of) (\d+)", re.I)
_PROMPT_SAID = re.compile(r"(\d+) (?:tokens )?in the messages|(\d+) input tokens|(\d+) tokens from the input", re.I)
_OUTPUT_SAID = re.compile(r"at most (\d+) completion tokens|valid range of max_tokens is \[1, (\d+)\]", re.I)


def limits_said(text: str) -> tuple[int | None, int | None, int | None]:
    """The context, prompt and output token limits a refusal states (each None when it does not say)."""

    def said(pattern: re.Pattern[str]) -> int | None:
        match = pattern.search(text)
        return int(next(g for g in match.groups() if g)) if match else None

    return said(_CONTEXT_SAID), said(_PROMPT_SAID), said(_OUTPUT_SAID)


def one_line(text: str, limit: int = 240) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ErrorReply(Exception):
    """A 200 reply whose body is an API error (`{"error": {...}}`), not a completion."""


def read_completion(data: Any, n: int) -> tuple[list[tuple[str | None, str | None, str | None]], Usage]:
    """(content, finish_reason, reasoning) of the first `n` choices of a chat completion, and its usage.

    A body of the wrong shape raises ValueError, TypeError, KeyError or AttributeError: the caller retries it."""
    if isinstance(data, dict) and isinstance(data.get("error"), (dict, str)) and not data.get("choices"):
        error = data["error"]
        said = error.get("message") or error.get("code") or error.get("type") if isinstance(error, dict) else error
        raise ErrorReply(one_line(str(said), 200))  # e.g. insufficient_quota with HTTP 200: no retry will change it
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise ValueError(f"no list of choices in {type(data).__name__}")
    choices = []
    for choice in data["choices"][:n]:
        message = choice["message"]
        content = message.get("content")
        if isinstance(content, list):  # content as a list of parts, as some servers send it: the text parts, in order
            content = "".join(part["text"] for part in content if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str))
        if content is not None and not isinstance(content, str):
            raise TypeError(f"message content is {type(content).__name__}, not text")
        choices.append((content, choice.get("finish_reason"), reasoning(message)))
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}  # `"usage": "lots"` is no count, not a broken reply
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None  # optional: a server that omits or garbles it loses nothing else
    if cached is None and isinstance(data.get("timings"), dict):  # llama-server: its own per-request timings
        cached = data["timings"].get("cache_n")
    cached = cached if isinstance(cached, int) and not isinstance(cached, bool) and cached >= 0 else None
    return choices, Usage(count(usage.get("prompt_tokens")), count(usage.get("completion_tokens")), cached)


def count(value: Any) -> int:
    """A token count a server reported; anything but a finite non-negative number (NaN, Infinity, -5, "x") is no count."""
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < float("inf") else 0


def reasoning(message: dict[str, Any]) -> str | None:
    """The reasoning a server sent apart from the answer, under whichever name it uses."""
    for name in _REASONING_FIELDS:
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def innermost(err: BaseException) -> BaseException:
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return err


def root_cause(err: BaseException) -> str:
    """The innermost cause of a connection failure, e.g. 'connection refused'."""
    err = innermost(err)
    if isinstance(err, ConnectionRefusedError) or "connection refused" in str(err).lower():
        return "connection refused"
    return one_line(str(err) or type(err).__name__, 160)


def server_message(err: Any) -> str:
    body = err.body
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            if body.get(key):
                return one_line(str(body[key]))
    return one_line(err.message)


def deadline_client(total: float, where: str) -> Any:
    """The SDK's aiohttp client, with `total` seconds for each try as a whole (connect, send, and the
    whole body of a reply that is not streamed) and at most MAX_REPLY_BYTES of that body, counted
    after decompression. The transport's own timeouts are per read: a server trickling a byte every
    few seconds would hold one try for ever. A try past its deadline fails as a read timeout, which
    the client retries like any other; a body past the cap (a gzip bomb) ends the request, naming `where`."""
    import httpx2
    from openai import DefaultAioHttpClient

    class DeadlineClient(DefaultAioHttpClient):  # type: ignore[misc,valid-type]
        async def send(self, request: Any, *, stream: bool = False, **kwargs: Any) -> Any:
            try:
                return await asyncio.wait_for(self._bounded(request, stream, **kwargs), total)
            except asyncio.TimeoutError:
                raise httpx2.ReadTimeout(f"no complete reply within {total:g}s", request=request) from None

        async def _bounded(self, request: Any, stream: bool, **kwargs: Any) -> Any:
            response = await super().send(request, stream=True, **kwargs)
            if stream:  # the caller reads it, bounded in `OpenAIChatModel.stream`
                return response
            try:
                parts, size = [], 0
                async for part in response.aiter_bytes():  # decoded: gzip and the like already undone
                    size += len(part)
                    if size > MAX_REPLY_BYTES:
                        raise ModelError(f"{where} sent a reply over {MAX_REPLY_BYTES:,} bytes once decompressed; cut off")
                    parts.append(part)
                response._content = b"".join(parts)  # what `aread` would have stored: the body, read
            finally:
                await response.aclose()
            return response

    return DeadlineClient()
