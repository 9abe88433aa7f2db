"""Usage: every `[E#]` a rollout cites increments that item's usage; s(e) = log(1 + usage)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from ted.library import Library

_USED_LINE = re.compile(r"used\s*:?\s*\[([^\]]*)\]", re.IGNORECASE)
_ID = re.compile(r"\bE([1-9][0-9]{0,5})\b")


def cited_ids(text: str, known: Iterable[str]) -> list[str]:
    """IDs a reply cites, each once, in order of first mention; only IDs in `known` count.

    The `Used: [E1, E3]` line is authoritative when present; otherwise inline `[E#]` mentions count.
    """
    known_set = set(known)
    used = _USED_LINE.findall(text)
    source = used[-1] if used else " ".join(re.findall(r"\[(E[0-9]+(?:\s*,\s*E[0-9]+)*)\]", text))
    seen: list[str] = []
    for number in _ID.findall(source):
        item_id = f"E{number}"
        if item_id in known_set and item_id not in seen:
            seen.append(item_id)
    return seen


def count_usage(library: Library, citations: Iterable[list[str]]) -> Counter[str]:
    """Add one use per citing rollout to each cited item still in the library; returns the counts."""
    counts: Counter[str] = Counter(item_id for ids in citations for item_id in ids)
    for item in library.items:
        item.usage += counts.get(item.id, 0)
    return counts
