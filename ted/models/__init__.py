"""Chat-model backends behind one protocol, chosen by a spec string.

Specs:
  openai:MODEL@BASE_URL   any OpenAI-compatible server (vLLM, SGLang, llama.cpp, hosted APIs);
                          split at the last `@` before http(s)://, so MODEL may hold `@`
                          (`openai:claude-sonnet-4@20250514@https://HOST/v1`);
                          `openai:MODEL` alone uses $OPENAI_BASE_URL or api.openai.com
  hf:MODEL_ID_OR_DIR      local transformers model (text or image-text-to-text)
  gguf:PATH               a GGUF file run by llama.cpp in process
  local, local:teacher    Qwen2.5-Coder 0.5B / 1.5B Instruct GGUFs from the `[local]` extra (the
                          embedded student and teacher); local:tiny the Gemma 3 270M base model
                          (ted.models.local holds the list)
"""

from __future__ import annotations

import os
import re
from typing import Any

from ted.errors import ModelError, SpecError
from ted.models.base import (
    BaseChatModel,
    ChatModel,
    ChatResult,
    Message,
    SamplingParams,
    Usage,
    chat_json,
)

__all__ = [
    "BaseChatModel",
    "ChatModel",
    "ChatResult",
    "Message",
    "SamplingParams",
    "Usage",
    "chat_json",
    "load_model",
    "parse_spec",
]

# An `@` directly before an http(s) URL; the spec splits at the last one.
_URL_AT = re.compile(r"@(?=https?://)")
SPEC_HELP = "use openai:MODEL@BASE_URL, hf:MODEL_ID_OR_DIR, gguf:PATH, local, local:teacher or local:tiny"


def parse_spec(spec: str) -> tuple[str, str, str | None]:
    """Split a spec into (backend, model, base_url). Raises ModelError for unknown specs."""
    spec = spec.strip()
    if spec == "local" or spec.startswith("local:"):
        from ted.models.local import get

        return "local", get(spec).name, None
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise SpecError(f"unknown model spec {spec!r}: {SPEC_HELP}")
    if kind == "openai":
        # The URL starts at the last `@` followed by a scheme, so dated model ids
        # (`claude-sonnet-4@20250514`) keep their `@`, and so do credentials inside the URL.
        cuts = [m.start() for m in _URL_AT.finditer(rest)]
        model, url = (rest[: cuts[-1]], rest[cuts[-1] + 1 :]) if cuts else (rest, None)
        if not model:
            raise SpecError(f"model spec {spec!r} names no model: {SPEC_HELP}")
        if model.endswith("@") or "://" in model:
            raise SpecError(f"model spec {spec!r}: the base URL must start with http:// or https://")
        if url is not None:
            _check_url(spec, url)
        return "openai", model, url
    if kind in ("hf", "gguf"):
        return kind, rest, None
    raise SpecError(f"unknown model backend {kind!r} in {spec!r}: {SPEC_HELP}")


def _check_url(spec: str, url: str) -> None:
    """A base URL that no request can use (port 99999, no host, a space or newline in it) is a usage
    error now, not a minute of retries ending in "cannot reach"."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as err:
        raise SpecError(f"model spec {spec!r}: the base URL is not valid ({err})") from None
    if not parts.hostname or any(ch.isspace() or not ch.isprintable() for ch in url):
        raise SpecError(f"model spec {spec!r}: the base URL names no host, or holds spaces or control characters")


def local_engine() -> str:
    """How `local…` specs run: "server" (a managed llama-server child: parallel slots and prompt-prefix
    reuse, see docs/local-models.md) when it is built, else "process" (llama.cpp in this process).
    $TED_LOCAL_ENGINE=process|server chooses."""
    chosen = os.environ.get("TED_LOCAL_ENGINE", "").strip().lower()
    if chosen not in ("", "server", "process"):
        raise ModelError(f"TED_LOCAL_ENGINE={chosen!r}: use server or process")
    if chosen:
        return chosen
    from ted.models.server import server_binary

    return "server" if server_binary() is not None else "process"


def load_model(
    spec: str,
    *,
    api_key_env: str = "OPENAI_API_KEY",
    max_concurrency: int = 8,
    timeout: float | None = None,
    max_retries: int | None = None,
    **options: Any,
) -> ChatModel:
    """Build the backend a spec names. Heavy backends are imported only when asked for.

    `timeout` (seconds per reply) and `max_retries` (per request) bound an endpoint, so an outage
    ends a run instead of hanging it; every caller may pass them whatever the spec, and in-process
    backends, which make no requests, have nothing to bound. None: the backend's default.
    """
    backend, model, base_url = parse_spec(spec)
    if backend == "openai":
        from ted.models.openai_api import OpenAIChatModel

        api_key = os.environ.get(api_key_env)
        bounds = {k: v for k, v in (("timeout", timeout), ("max_retries", max_retries)) if v is not None}
        return OpenAIChatModel(
            spec, model, base_url=base_url, api_key=api_key, api_key_env=api_key_env, max_concurrency=max_concurrency, **bounds, **options
        )
    if backend == "hf":
        from ted.models.transformers_local import HFChatModel

        return HFChatModel(spec, model, max_concurrency=max_concurrency, **options)
    if backend == "local" and local_engine() == "server":
        from ted.models.server import load_served

        bounds = {k: v for k, v in (("timeout", timeout), ("max_retries", max_retries)) if v is not None}
        return load_served(spec, max_concurrency=max_concurrency, **bounds)
    from ted.models.llama_cpp import LlamaCppChatModel
    from ted.models.local import model_path

    path = model_path(spec) if backend == "local" else model
    return LlamaCppChatModel(spec, path, max_concurrency=max_concurrency, **options)
