"""Does the library reach the model? A probe of the server's chat template, before any paid call.

The library travels in the system message. Some chat templates drop system messages without a
word: llama.cpp's `--chat_format gemma` (the obvious way to serve Gemma), and others; the run
would then distill, evaluate or chat as if there were no library. Before that, two requests whose
system messages differ only in length compare the server's `prompt_tokens`: equal counts mean
the system text never reached the prompt, and the run stops with one line naming the fixes.
Why not one request without a system message: templates such as Qwen2.5's put a default system
prompt in when none is given ("You are Qwen, created by Alibaba Cloud…"), longer than ours.
"""

from __future__ import annotations

from typing import Any

from ted.distill.calls import gather_or_cancel
from ted.errors import ConfigError
from ted.models.base import Message, SamplingParams

PROBE_SYSTEM = "You are a careful assistant. Follow the lessons given here."
PROBE_USER = "Say OK."
FIXES = (
    "serve it with a chat template that keeps system messages (for Gemma: llama_cpp.server --chat_format hf-tokenizer-config "
    "--hf_tokenizer_config_path FILE, FILE holding ted.models.llama_cpp.GEMMA_CHAT_CONFIG; see the README's serving section), "
    "or {fold} to fold the library into the first user turn"
)


async def system_kept(model: Any) -> bool | None:
    """Whether the server counts a system message in the prompt; None when it reports no token counts."""
    params = SamplingParams(n=1, temperature=0.0, max_tokens=1, seed=0)
    short, long = await gather_or_cancel(  # side by side: the probe delays the run by one round trip, not two
        model.chat([Message("system", PROBE_SYSTEM), Message("user", PROBE_USER)], params),
        model.chat([Message("system", f"{PROBE_SYSTEM} {PROBE_SYSTEM}"), Message("user", PROBE_USER)], params),
    )
    if not (short.usage.prompt_tokens and long.usage.prompt_tokens):
        return None
    return long.usage.prompt_tokens > short.usage.prompt_tokens


async def ensure_system_reaches(model: Any, fold: str = "pass --system-in-user") -> None:
    """Stop with one line when an OpenAI-compatible server drops system messages (nothing to check elsewhere)."""
    if getattr(model, "backend", None) != "openai" or getattr(model, "system_in_user", False):
        return
    if await system_kept(model) is False:
        where = getattr(model, "shown_url", model.spec)
        raise ConfigError(
            f"the library would never reach the model: {where} gives the same prompt_tokens whatever the length of the system message "
            f"(its chat template drops system messages); {FIXES.format(fold=fold)}"
        )
