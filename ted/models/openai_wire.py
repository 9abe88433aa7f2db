"""What an OpenAI-compatible server sends back, read defensively: a completion's choices and usage
(any field may be missing or of the wrong type), and a failure as one short line."""

from __future__ import annotations

from typing import Any

from ted.models.base import Usage

# Where thinking models' reasoning arrives apart from the answer.
_REASONING_FIELDS = ("reasoning_content", "reasoning")


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
    usage = data.get("usage") or {}
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
