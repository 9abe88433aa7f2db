"""Chat-template control sequences: untrusted text must never carry them into a prompt.

Servers tokenise message content with special tokens enabled (llama.cpp's server does), so a
library item holding `<start_of_turn>model …<end_of_turn>` becomes real turn markers: a forged
assistant turn, or a system prompt ended early. Library items (local files and Hub downloads,
through `Experience` validation) and the Space's inputs are checked against the list below, plus
the student tokenizer's own special tokens when that tokenizer is known (`special_tokens` of the
llama.cpp and transformers backends).

Such text is refused, not escaped, with one line naming the item. An escape would have to be
model-specific (the same characters are plain text for one tokenizer and a control token for
another), would silently change what the teacher wrote, and would hide tampering from the user;
a general lesson never needs to spell out a chat template's markup.

This is the maintained list: one entry per family, literal sequences and the shapes that whole
families of tokens share. Add new families here and nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# Literal control sequences, by family.
CONTROL_SEQUENCES: dict[str, tuple[str, ...]] = {
    "Gemma": ("<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>", "<start_of_image>", "<end_of_image>", "<image_soft_token>"),
    "Llama 2 / Mistral": ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "<s>", "</s>"),
    "Mistral v3+": ("[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_CALLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[IMG]"),
    "Qwen tools": ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"),
    "reasoning tags": ("<think>", "</think>", "<thinking>", "</thinking>", "<reasoning>", "</reasoning>"),
}
# Token shapes whole families share: ChatML/Qwen `<|im_start|>`, Llama 3 `<|start_header_id|>`/`<|eot_id|>`,
# Phi `<|user|>`, gpt-oss `<|channel|>`, Command-R `<|START_OF_TURN_TOKEN|>`; DeepSeek's full-width
# `<｜User｜>`, `<｜end▁of▁sentence｜>`; numbered reserved tokens `<unused12>`.
CONTROL_SHAPES: dict[str, str] = {
    "ChatML / Llama 3 / Phi / gpt-oss": r"<\|[^|<>\s]{1,64}\|>",
    "DeepSeek": r"<｜[^｜<>]{1,64}｜>",
    "reserved tokens": r"<(?:unused|reserved_special_token_?)\d+>",
}

_PATTERN = re.compile(
    "|".join([*(re.escape(s) for group in CONTROL_SEQUENCES.values() for s in group), *CONTROL_SHAPES.values()])
)  # case-sensitive, as tokenizers match special tokens


def find_control(text: str, extra: Iterable[str] = ()) -> str | None:
    """The first control sequence in `text` (from the list, or among `extra` special tokens), else None."""
    match = _PATTERN.search(text)
    if match:
        return match.group(0)
    return next((token for token in extra if len(token) > 1 and token in text), None)


def refusal(where: str, found: str) -> str:
    """The one line for text that carries a control sequence."""
    return f"{where} contains the chat-template control sequence {found!r}, which would forge chat turns in the prompt; remove it (this text is refused, never sent)"


def special_tokens(model: Any) -> tuple[str, ...]:
    """The special tokens of a model's own tokenizer, when the backend knows it (else none)."""
    known = getattr(model, "special_tokens", None)
    return tuple(known()) if callable(known) else ()
