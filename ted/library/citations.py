"""The citation format: the block the student sees, and the `Used: [E1, E3]` trailer read back.

The block's heading and instruction are the prompt file `library.md` (so `--prompts` can change
them); the items follow in ID order, one `[E#] text` line each, so the same library gives the
same bytes on every request and server prefix caches hit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Protocol

from ted.library.lessons import ID_NUMBER, format_id


class Item(Protocol):
    """What the block shows of an item (an `Experience`; this room does not import the model)."""

    @property
    def id(self) -> str: ...

    @property
    def text(self) -> str: ...

BLOCK_PROMPT = "library"
PLAIN_BLOCK_PROMPT = "library_plain"
"""The block without the citation instruction, for tasks ted does not grade (any lm-eval task)."""

# The trailer the block asks for, and inline `[E1, E3]` mentions when a reply has no trailer.
_TRAILER = re.compile(r"\**\bused\**\s*:?\s*\**\s*\[([^\]\n]*)\]\**", re.IGNORECASE)
_INLINE = re.compile(r"\[(E[0-9]+(?:\s*,\s*E[0-9]+)*)\]")
_CITED_ID = re.compile(rf"\bE({ID_NUMBER})\b")


def item_line(item: Item) -> str:
    """One item as the prompt block shows it."""
    return f"[{item.id}] {item.text}"


def render_block(items: Sequence[Item], cite: bool = True, frame: bool = False) -> str:
    """The exact block injected into the student's system prompt ("" without items, unless `frame`:
    the heading and instruction alone, the placebo arm's block).

    `cite=False`: the block for a task ted does not grade itself (any lm-eval task), asking for no
    `Used: [...]` trailer and showing no IDs to cite, since an upstream answer extractor (gsm8k's
    last number, say) would read a trailer or an `[E3]` as the answer.
    """
    if not items and not frame:
        return ""
    from ted import prompts  # the active prompt set: a run's `--prompts` folder, else the package's

    heading = prompts.source(BLOCK_PROMPT if cite else PLAIN_BLOCK_PROMPT).strip()
    lines = [item_line(item) if cite else f"- {item.text}" for item in items]
    return heading + "\n\n" + "\n".join(lines) if lines else heading


def placebo_block() -> str:
    """The placebo arm's block: a library's heading and citation instruction with no lesson, so a
    comparison against it measures the lessons alone (not having a system prompt, nor the trailer)."""
    return render_block([], frame=True)


def cited_ids(text: str, known: Iterable[str]) -> list[str]:
    """IDs a reply cites, each once, in order of first mention; only IDs in `known` count.

    The `Used: [E1, E3]` trailer is authoritative when present; otherwise inline `[E#]` mentions count.
    """
    known_set = set(known)
    used = _TRAILER.findall(text)
    source = used[-1] if used else " ".join(_INLINE.findall(text))
    seen: list[str] = []
    for number in _CITED_ID.findall(source):
        cited = format_id(int(number))
        if cited in known_set and cited not in seen:
            seen.append(cited)
    return seen


def strip_trailer(text: str, replacement: str = " ") -> str:
    """The reply without its `Used: [...]` trailer (its IDs are not answers; a baseline reply has none)."""
    return _TRAILER.sub(replacement, text)
